"""Choosing the compute device and dtypes: CUDA when present, CPU otherwise.

Policy: fp32 on CPU unless bf16 is asked for (fast on AVX512-BF16/AMX CPUs); on CUDA fp16 for the
UNet (bf16 where supported and asked for) and bf16-or-fp32 for the VAE, whose fp16 activations
overflow in SDXL's decoder.
"""

from __future__ import annotations

import torch


def default_device(force_cpu: bool = False) -> torch.device:
    """CUDA device 0 when available and not disabled, else the CPU."""
    if not force_cpu and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def unet_dtype(device: torch.device, prefer_bf16: bool = False) -> torch.dtype:
    """Compute dtype for the UNet (and other transformer-style networks)."""
    if device.type == "cuda":
        if prefer_bf16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    return torch.bfloat16 if prefer_bf16 else torch.float32


def vae_dtype(device: torch.device, prefer_bf16: bool = False) -> torch.dtype:
    """Compute dtype for the VAE: never fp16 (NaNs in SDXL's decoder)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if prefer_bf16 else torch.float32


def is_out_of_memory(exc: BaseException) -> bool:
    """True for allocator failures on any device (CUDA OOM, CPU 'not enough memory')."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in text.lower() or "not enough memory" in text.lower()
    )


def free_memory_bytes(device: torch.device) -> int:
    """Memory the device can still allocate (CUDA free memory, or available system RAM)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a runtime requirement
        return 8 << 30
