"""Operations on LATENT dicts: resizing (incl. slerp-based ``bislerp``), batch selection and repetition.

A LATENT is ``{"samples": [B,C,h,w], "noise_mask"?: [B|1,1,H,W], "batch_index"?: list[int]}``
plus optional extra keys that travel along unchanged. Inputs are never mutated. A noise mask keeps
its own resolution through resizes; the sampler scales it to the latent (as in ComfyUI).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
CROP_METHODS = ("disabled", "center")


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of vectors along dim 1; magnitudes are interpolated linearly."""
    norm_a = a.norm(dim=1, keepdim=True)
    norm_b = b.norm(dim=1, keepdim=True)
    unit_a = a / norm_a.clamp_min(1e-12)
    unit_b = b / norm_b.clamp_min(1e-12)
    cos = (unit_a * unit_b).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    safe = sin.abs() > 1e-6
    wa = torch.where(safe, torch.sin((1 - t) * omega) / sin.where(safe, torch.ones_like(sin)), 1 - t)
    wb = torch.where(safe, torch.sin(t * omega) / sin.where(safe, torch.ones_like(sin)), t)
    direction = wa * unit_a + wb * unit_b
    return direction * (norm_a * (1 - t) + norm_b * t)


def _bislerp_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Resize one spatial axis (2 = height, 3 = width), slerping between neighbouring latents."""
    length = x.shape[dim]
    if size == length:
        return x
    # Sample positions as bilinear interpolation with align_corners=False does.
    pos = ((torch.arange(size, dtype=torch.float32) + 0.5) * length / size - 0.5).clamp(0, length - 1)
    low = pos.floor().long()
    high = (low + 1).clamp(max=length - 1)
    t = (pos - low.float()).to(x.dtype)
    a = x.index_select(dim, low)
    b = x.index_select(dim, high)
    shape = [1, 1, 1, 1]
    shape[dim] = size
    return _slerp(a, b, t.view(shape))


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize latents by slerp along the channel vector (keeps latent norms, unlike bilinear)."""
    x = samples.float()
    x = _bislerp_axis(x, height, 2)
    x = _bislerp_axis(x, width, 3)
    return x.to(samples.dtype)


def resize_samples(
    samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled"
) -> torch.Tensor:
    """Resize ``[B,C,h,w]`` to ``height×width`` cells; ``crop="center"`` first crops to the new aspect."""
    if method not in UPSCALE_METHODS:
        raise ValueError(f"upscale_method must be one of {UPSCALE_METHODS}, not {method!r}")
    if crop not in CROP_METHODS:
        raise ValueError(f"crop must be one of {CROP_METHODS}, not {crop!r}")
    if width < 1 or height < 1:
        raise ValueError(f"target latent size must be at least 1×1 cells, got {width}×{height}")
    if crop == "center":
        old_h, old_w = samples.shape[-2:]
        old_aspect, new_aspect = old_w / old_h, width / height
        if old_aspect > new_aspect:
            keep = round(old_w * new_aspect / old_aspect)
            x0 = (old_w - keep) // 2
            samples = samples[..., :, x0 : x0 + keep]
        elif old_aspect < new_aspect:
            keep = round(old_h * old_aspect / new_aspect)
            y0 = (old_h - keep) // 2
            samples = samples[..., y0 : y0 + keep, :]
    if method == "bislerp":
        return bislerp(samples, width, height)
    mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area", "bicubic": "bicubic"}[
        method
    ]
    kwargs: dict[str, Any] = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(samples.float(), size=(height, width), mode=mode, **kwargs).to(samples.dtype)


def upscale(
    latent: dict, method: str, width: int, height: int, crop: str = "disabled", downscale: int = 8
) -> dict:
    """LatentUpscale: ``width``/``height`` in pixels; 0 keeps the aspect ratio from the other side."""
    samples = latent["samples"]
    old_h, old_w = samples.shape[-2:]
    if width == 0 and height == 0:
        return dict(latent)
    # As ComfyUI: never below 64 px; a 0 side follows the aspect ratio of the other.
    if width == 0:
        height = max(64, height)
        width = max(64, round(height * old_w / old_h))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(width * old_h / old_w))
    else:
        width, height = max(64, width), max(64, height)
    out = dict(latent)
    out["samples"] = resize_samples(samples, width // downscale, height // downscale, method, crop)
    return out


def upscale_by(latent: dict, method: str, scale_by: float) -> dict:
    """LatentUpscaleBy: multiply both latent sides by ``scale_by`` (rounded)."""
    samples = latent["samples"]
    height = max(1, round(samples.shape[-2] * scale_by))
    width = max(1, round(samples.shape[-1] * scale_by))
    out = dict(latent)
    out["samples"] = resize_samples(samples, width, height, method)
    return out


def from_batch(latent: dict, batch_index: int, length: int) -> dict:
    """LatentFromBatch: items ``batch_index … +length``; records their original indices for noise."""
    samples = latent["samples"]
    batch = samples.shape[0]
    start = min(batch - 1, max(0, batch_index))
    length = min(batch - start, max(1, length))
    out = dict(latent)
    out["samples"] = samples[start : start + length].clone()
    mask = latent.get("noise_mask")
    if mask is not None:
        if mask.shape[0] == 1:
            out["noise_mask"] = mask.clone()
        else:
            if mask.shape[0] < batch:
                mask = mask.repeat(math.ceil(batch / mask.shape[0]), *([1] * (mask.ndim - 1)))[:batch]
            out["noise_mask"] = mask[start : start + length].clone()
    indices = latent.get("batch_index")
    out["batch_index"] = (
        list(indices[start : start + length]) if indices else list(range(start, start + length))
    )
    return out


def repeat_batch(latent: dict, amount: int) -> dict:
    """RepeatLatentBatch: the whole batch ``amount`` times; batch indices continue past the originals."""
    if amount < 1:
        raise ValueError("amount must be at least 1")
    samples = latent["samples"]
    out = dict(latent)
    out["samples"] = samples.repeat(amount, 1, 1, 1)
    mask = latent.get("noise_mask")
    if mask is not None and mask.shape[0] > 1:
        if mask.shape[0] < samples.shape[0]:
            mask = mask.repeat(math.ceil(samples.shape[0] / mask.shape[0]), 1, 1, 1)[: samples.shape[0]]
        out["noise_mask"] = mask.repeat(amount, 1, 1, 1)
    indices = latent.get("batch_index")
    if indices:
        offset = max(indices) - min(indices) + 1
        out["batch_index"] = list(indices) + [i + k * offset for k in range(1, amount) for i in indices]
    return out


# .latent files ----------------------------------------------------------------------------------
# ComfyUI's format: safetensors with "latent_tensor" (raw VAE latents, as LATENT values hold them)
# and an empty "latent_format_version_0" marker; files without the marker are from before ComfyUI's
# switch and hold latents scaled by SD1.5's 0.18215.
LATENT_TENSOR_KEY = "latent_tensor"
LATENT_VERSION_KEY = "latent_format_version_0"
LEGACY_LATENT_SCALE = 0.18215


def latent_file_bytes(samples: torch.Tensor, metadata: dict[str, str]) -> bytes:
    """Raw ``samples`` encoded as a ComfyUI ``.latent`` file.

    Returns bytes so the caller decides how the file is written (atomically, never over another).
    """
    from safetensors.torch import save

    tensors = {LATENT_TENSOR_KEY: samples.contiguous().cpu(), LATENT_VERSION_KEY: torch.tensor([])}
    return save(tensors, metadata=metadata)


def load_latent_file(path) -> torch.Tensor:
    """Read a ``.latent`` file → raw samples (float32), with ComfyUI's arithmetic for legacy files."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        if LATENT_TENSOR_KEY not in keys:
            raise ValueError(f"{getattr(path, 'name', path)} is not a latent file (no {LATENT_TENSOR_KEY})")
        samples = handle.get_tensor(LATENT_TENSOR_KEY).float()
    if samples.ndim != 4:
        raise ValueError(f"latent tensor must be [B,C,h,w], got shape {tuple(samples.shape)}")
    if LATENT_VERSION_KEY not in keys:
        return samples * (1.0 / LEGACY_LATENT_SCALE)
    return samples
