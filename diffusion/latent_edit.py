"""Editing LATENT dicts: compositing, blending, arithmetic, batching and the latent "operations"
(callables ``operation(latent=tensor) -> tensor``) that LatentApplyOperation applies.

Every function returns a new dict (other keys such as ``noise_mask`` travel along) and never
mutates its inputs. The arithmetic is linear or scale-invariant, so it reads the same on raw
(ComfyUI) and scaled latents.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from diffusion import image_ops, mask_ops
from diffusion.latent_ops import resize_samples

LatentOperation = Callable[..., torch.Tensor]
DOWNSCALE = 8  # pixels per latent cell for SD1/SD2/SDXL


def _with_samples(latent: dict[str, Any], samples: torch.Tensor) -> dict[str, Any]:
    out = dict(latent)
    out["samples"] = samples
    return out


def reshape_like(samples: torch.Tensor, target: torch.Tensor, repeat_batch: bool = True) -> torch.Tensor:
    """``samples`` resized (bilinear, centre crop) to ``target``'s size, batch repeated to match."""
    if samples.shape[1:] != target.shape[1:]:
        samples = resize_samples(samples, target.shape[-1], target.shape[-2], "bilinear", "center")
    return image_ops.repeat_to_batch(samples, target.shape[0]) if repeat_batch else samples


# ---- compositing --------------------------------------------------------------------------
def composite_feathered(destination: dict, source: dict, x: int, y: int, feather: int) -> dict:
    """LatentComposite: paste ``source`` at pixel (x, y); ``feather`` pixels fade in linearly on the
    sides of the pasted area that lie inside the destination."""
    to, pasted = destination["samples"], source["samples"]
    left, top, cells = x // DOWNSCALE, y // DOWNSCALE, feather // DOWNSCALE
    height = max(0, min(pasted.shape[-2], to.shape[-2] - top))
    width = max(0, min(pasted.shape[-1], to.shape[-1] - left))
    mask = None
    if cells > 0 and height > 0 and width > 0:
        mask = mask_ops.feather(torch.ones(1, height, width), cells if left else 0, cells if top else 0,
                                cells if left + width < to.shape[-1] else 0, cells if top + height < to.shape[-2] else 0)
    return composite_masked(destination, {**source, "samples": pasted[..., :height, :width]}, x, y, mask)


def composite_masked(destination: dict, source: dict, x: int, y: int, mask: torch.Tensor | None = None,
                     resize_source: bool = False) -> dict:
    """LatentCompositeMasked: ``mask * source + (1 - mask) * destination`` at pixel (x, y)."""
    samples = image_ops.composite(destination["samples"], source["samples"], x, y, mask, DOWNSCALE, resize_source)
    return _with_samples(destination, samples)


def blend(samples1: dict, samples2: dict, blend_factor: float) -> dict:
    """LatentBlend: ``samples1 * blend_factor + samples2 * (1 - blend_factor)`` (samples2 resized
    bicubically, centre-cropped, when the shapes differ)."""
    a, b = samples1["samples"], samples2["samples"]
    if a.shape != b.shape:
        b = image_ops.repeat_to_batch(resize_samples(b, a.shape[-1], a.shape[-2], "bicubic", "center"), a.shape[0])
    return _with_samples(samples1, a * blend_factor + b * (1 - blend_factor))


def crop(latent: dict, width: int, height: int, x: int, y: int) -> dict:
    """LatentCrop in pixels; the start is kept at least 8 cells (64 px) inside the latent."""
    samples = latent["samples"]
    left = min(x // DOWNSCALE, samples.shape[-1] - 8)
    top = min(y // DOWNSCALE, samples.shape[-2] - 8)
    left, top = max(0, left), max(0, top)
    return _with_samples(latent, samples[..., top:top + height // DOWNSCALE, left:left + width // DOWNSCALE])


# ---- arithmetic ---------------------------------------------------------------------------
def add(samples1: dict, samples2: dict) -> dict:
    a = samples1["samples"]
    return _with_samples(samples1, a + reshape_like(samples2["samples"], a))


def subtract(samples1: dict, samples2: dict) -> dict:
    a = samples1["samples"]
    return _with_samples(samples1, a - reshape_like(samples2["samples"], a))


def multiply(latent: dict, multiplier: float) -> dict:
    return _with_samples(latent, latent["samples"] * multiplier)


def _norm(samples: torch.Tensor) -> torch.Tensor:
    """Length of each latent pixel's channel vector, kept as a channel dim for broadcasting."""
    return torch.linalg.vector_norm(samples, dim=1, keepdim=True)


def interpolate(samples1: dict, samples2: dict, ratio: float) -> dict:
    """LatentInterpolate: mix the per-pixel channel directions by ``ratio`` (towards samples1),
    then give the result the mixed lengths, so a mix does not shrink towards zero."""
    a = samples1["samples"]
    b = reshape_like(samples2["samples"], a)
    norm_a, norm_b = _norm(a), _norm(b)
    direction = torch.nan_to_num(a / norm_a) * ratio + torch.nan_to_num(b / norm_b) * (1.0 - ratio)
    unit = torch.nan_to_num(direction / _norm(direction))
    return _with_samples(samples1, unit * (norm_a * ratio + norm_b * (1.0 - ratio)))


_AXES = {"x": -1, "y": -2, "t": -3}


def concat(samples1: dict, samples2: dict, dim: str) -> dict:
    """LatentConcat: join along width (x), height (y) or time (t); "-" puts samples2 first.
    samples2's batch is repeated to samples1's."""
    a = samples1["samples"]
    b = image_ops.repeat_to_batch(samples2["samples"], a.shape[0])
    parts = (b, a) if dim.startswith("-") else (a, b)
    return _with_samples(samples1, torch.cat(parts, dim=_AXES[dim.lstrip("-")]))


def cut(latent: dict, dim: str, index: int, amount: int) -> dict:
    """LatentCut: ``amount`` cells from ``index`` along x/y/t (negative index counts from the end)."""
    samples = latent["samples"]
    axis = samples.ndim + _AXES[dim]
    size = samples.shape[axis]
    if index >= 0:
        index = min(index, size - 1)
        amount = min(size - index, amount)
    else:
        index = max(index, -size)
        amount = min(-index, amount)
    return _with_samples(latent, torch.narrow(samples, axis, index, amount))


# ---- batches ------------------------------------------------------------------------------
def batch(samples1: dict, samples2: dict) -> dict:
    """LatentBatch: samples2 (resized to samples1's size) after samples1, batch indices kept."""
    a = samples1["samples"]
    b = reshape_like(samples2["samples"], a, repeat_batch=False)
    out = _with_samples(samples1, torch.cat((a, b)))
    out["batch_index"] = (list(samples1.get("batch_index") or range(a.shape[0]))
                          + list(samples2.get("batch_index") or range(b.shape[0])))
    return out


def seed_behavior(latent: dict, behavior: str) -> dict:
    """``fixed``: every item gets the first item's noise; ``random``: each its own (no batch_index)."""
    out = dict(latent)
    if behavior == "random":
        out.pop("batch_index", None)
    elif behavior == "fixed":
        out["batch_index"] = [(latent.get("batch_index") or [0])[0]] * latent["samples"].shape[0]
    else:
        raise ValueError(f"seed_behavior must be 'random' or 'fixed', not {behavior!r}")
    return out


def rebatch(latents: list[dict], batch_size: int) -> list[dict]:
    """Regroup the items of a list of LATENTs into batches of ``batch_size``; a new batch starts
    where the latent size changes. Noise masks follow their items (resized to the pixel size);
    batch indices continue across the list so every item keeps its own noise."""
    items: list[tuple[dict, torch.Tensor, torch.Tensor | None, int]] = []
    offset = 0
    for latent in latents:
        samples = latent["samples"]
        count = samples.shape[0]
        mask = latent.get("noise_mask")
        if mask is not None:
            mask = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).float()
            size = (samples.shape[-2] * DOWNSCALE, samples.shape[-1] * DOWNSCALE)
            if mask.shape[-2:] != size:
                mask = F.interpolate(mask, size=size, mode="bilinear")
            mask = image_ops.repeat_to_batch(mask, count)
        indices = list(latent.get("batch_index") or range(offset, offset + count))
        offset += count
        for i in range(count):
            items.append((latent, samples[i:i + 1], None if mask is None else mask[i:i + 1], indices[i]))
    groups: list[list[tuple[dict, torch.Tensor, torch.Tensor | None, int]]] = []
    for item in items:
        current = groups[-1] if groups else None
        if current is None or len(current) == batch_size or current[0][1].shape[1:] != item[1].shape[1:]:
            groups.append([item])
        else:
            current.append(item)
    return [_group(group) for group in groups]


def _group(items: list[tuple[dict, torch.Tensor, torch.Tensor | None, int]]) -> dict:
    first = items[0][0]
    out = {key: value for key, value in first.items() if key not in ("samples", "noise_mask", "batch_index")}
    samples = torch.cat([item[1] for item in items])
    out["samples"] = samples
    out["batch_index"] = [item[3] for item in items]
    if any(item[2] is not None for item in items):
        size = (samples.shape[-2] * DOWNSCALE, samples.shape[-1] * DOWNSCALE)
        masks = torch.cat([item[2] if item[2] is not None else torch.ones(1, 1, *size) for item in items])
        if not torch.all(masks == 1.0):
            out["noise_mask"] = masks
    return out


# ---- latent operations ----------------------------------------------------------------------
def tonemap_reinhard(multiplier: float) -> LatentOperation:
    """Compress per-pixel latent lengths with Reinhard's x / (1 + x), the white point at
    (mean + 5 std) of the lengths times ``multiplier``; directions are kept."""

    def operation(latent: torch.Tensor, **_: Any) -> torch.Tensor:
        length = _norm(latent) + 1e-10
        white = (length.mean(dim=(1, 2, 3), keepdim=True) + 5 * length.std(dim=(1, 2, 3), keepdim=True)) * multiplier
        scaled = length / white
        return latent / length * (scaled / (scaled + 1.0) * white)

    return operation


def sharpen(radius: int, sigma: float, alpha: float) -> LatentOperation:
    """Unsharp-mask the per-pixel directions (ImageSharpen's kernel), then restore the lengths."""
    kernel = image_ops.sharpen_kernel(radius, sigma, alpha)

    def operation(latent: torch.Tensor, **_: Any) -> torch.Tensor:
        length = _norm(latent) + 1e-6
        return length * image_ops.convolve_reflect(latent / length, kernel.to(latent.device))

    return operation


def apply_operation(latent: dict, operation: LatentOperation) -> dict:
    return _with_samples(latent, operation(latent=latent["samples"]))


def pre_cfg_hook(operation: LatentOperation) -> Callable[[dict[str, Any]], list[torch.Tensor]]:
    """A ``sampler_pre_cfg_function`` applying ``operation`` to the guidance direction
    ``cond - uncond`` (x0 predictions) before CFG scales it; alone (one output) to cond itself."""

    def hook(args: dict[str, Any]) -> list[torch.Tensor]:
        out = list(args["conds_out"])
        if len(out) == 2:
            out[0] = operation(latent=out[0] - out[1]) + out[1]
        else:
            out[0] = operation(latent=out[0])
        return out

    return hook
