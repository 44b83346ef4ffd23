"""ComfyUI's `comfy.model_management` for node packs: interrupts, devices and dtypes.

Interrupts are per prompt (engine.interrupt.InterruptFlag on the running node's context), not a
process-wide flag; `InterruptProcessingException` *is* engine.errors.InterruptedByUser, so packs
that raise or catch it interoperate with the executor. Devices and dtypes come from the
runtime's model manager; nothing is detected at import.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.errors import InterruptedByUser
from engine.runtime import check_interrupt, current_node, services

InterruptProcessingException = InterruptedByUser


# ---- interrupts -----------------------------------------------------------------------------
def throw_exception_if_processing_interrupted() -> None:
    """Raise InterruptProcessingException if the running prompt was interrupted."""
    check_interrupt()


def processing_interrupted() -> bool:
    """Whether the running prompt was interrupted (False outside a node call)."""
    context = current_node()
    return context is not None and context.interrupt is not None and context.interrupt.is_set()


def interrupt_current_processing(value: bool = True) -> None:
    """Interrupt (or, with False, un-interrupt) the running prompt; no-op outside a node call."""
    context = current_node()
    if context is None or context.interrupt is None:
        return
    if value:
        context.interrupt.set()
    else:
        context.interrupt.clear()


# ---- devices and dtypes ---------------------------------------------------------------------
def _manager() -> Any:
    try:
        return services().model_manager
    except LookupError:
        return None


def get_torch_device() -> torch.device:
    """The compute device of the runtime's model manager (CPU without one)."""
    manager = _manager()
    return manager.device if manager is not None else torch.device("cpu")


def text_encoder_device() -> torch.device:
    return get_torch_device()


def vae_device() -> torch.device:
    return get_torch_device()


def get_autocast_device(dev: Any) -> str:
    return getattr(dev, "type", "cuda")


def should_use_fp16(device: Any = None, *args: Any, **kwargs: Any) -> bool:
    """Whether the runtime computes the diffusion model in float16."""
    return unet_dtype() == torch.float16


def should_use_bf16(device: Any = None, *args: Any, **kwargs: Any) -> bool:
    """Whether the runtime computes the diffusion model in bfloat16."""
    return unet_dtype() == torch.bfloat16


def intermediate_device() -> torch.device:
    """Where IMAGE / MASK / LATENT values live between nodes: always the CPU (docs/ARCHITECTURE.md)."""
    return torch.device("cpu")


def unet_offload_device() -> torch.device:
    manager = _manager()
    return getattr(manager, "offload_device", torch.device("cpu"))


def text_encoder_offload_device() -> torch.device:
    return unet_offload_device()


def vae_offload_device() -> torch.device:
    return unet_offload_device()


def cpu_mode() -> bool:
    return get_torch_device().type == "cpu"


def is_device_mps(device: Any) -> bool:
    return getattr(device, "type", None) == "mps"


def _dtype(method: str) -> torch.dtype:
    manager = _manager()
    return getattr(manager, method)() if manager is not None else torch.float32


def unet_dtype(*args: Any, **kwargs: Any) -> torch.dtype:
    return _dtype("unet_dtype")


def vae_dtype(*args: Any, **kwargs: Any) -> torch.dtype:
    return _dtype("vae_dtype")


def text_encoder_dtype(*args: Any, **kwargs: Any) -> torch.dtype:
    return _dtype("text_encoder_dtype")


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> int | tuple[int, int]:
    """Free memory on the compute device in bytes, as the model manager sees it."""
    manager = _manager()
    free = int(manager.free_memory_bytes()) if manager is not None else 0
    return (free, free) if torch_free_too else free


def get_torch_device_name(device: Any) -> str:
    return str(device)


def unload_all_models() -> None:
    """Move every model the runtime's manager holds off the compute device."""
    manager = _manager()
    if manager is not None:
        manager.unload_all()


def xformers_enabled() -> bool:
    """Latentgraph never uses xformers (PyTorch attention only)."""
    return False


def soft_empty_cache(force: bool = False) -> None:
    """Hand cached, unused accelerator memory back to the driver."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.empty_cache()
