"""Pure operations on CONDITIONING values: ``list[[Tensor[B, T, C], dict]]`` (ComfyUI's shape).

Inputs may come from the engine's cache, so nothing here mutates its arguments: every result is a
new list of new ``[tensor, dict]`` pairs whose dicts are shallow copies.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

Conditioning = list[list[Any]]


def _copy(entry: list[Any], **extra: Any) -> list[Any]:
    return [entry[0], {**entry[1], **extra}]


def make(cond: torch.Tensor, pooled: torch.Tensor | None = None, **extra: Any) -> Conditioning:
    """A one-entry conditioning from an encoder output."""
    options = {"pooled_output": pooled} if pooled is not None else {}
    return [[cond, {**options, **extra}]]


def with_options(conditioning: Conditioning, **options: Any) -> Conditioning:
    """Every entry with `options` merged into its dict (ConditioningSetArea, …SetTimestepRange, …)."""
    return [_copy(entry, **options) for entry in conditioning]


def combine(first: Conditioning, second: Conditioning) -> Conditioning:
    """Both lists: the sampler evaluates each entry and mixes the predictions."""
    return [_copy(e) for e in first] + [_copy(e) for e in second]


def _fit_length(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Cut or zero-pad the token axis to `length`."""
    if tensor.shape[1] >= length:
        return tensor[:, :length]
    pad = torch.zeros(tensor.shape[0], length - tensor.shape[1], tensor.shape[2], dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, pad], dim=1)


def _first(conditioning_from: Conditioning, what: str) -> list[Any]:
    if not conditioning_from:
        raise ValueError(f"{what}: conditioning_from is empty")
    if len(conditioning_from) > 1:
        log.warning("%s: conditioning_from has %d entries; only the first is used", what, len(conditioning_from))
    return conditioning_from[0]


def average(conditioning_to: Conditioning, conditioning_from: Conditioning, to_strength: float) -> Conditioning:
    """``to·s + from·(1−s)`` per entry of `conditioning_to`; `from`'s tokens are cut/padded to fit."""
    source = _first(conditioning_from, "ConditioningAverage")
    source_cond = source[0]
    source_pooled = source[1].get("pooled_output")
    result = []
    for cond, options in conditioning_to:
        if source_cond.shape[-1] != cond.shape[-1]:
            raise ValueError(f"ConditioningAverage: feature widths differ ({cond.shape[-1]} vs {source_cond.shape[-1]})")
        other = _fit_length(source_cond.to(cond), cond.shape[1])
        mixed = cond * to_strength + other * (1.0 - to_strength)
        new_options = dict(options)
        pooled = options.get("pooled_output")
        if pooled is not None and source_pooled is not None:
            new_options["pooled_output"] = pooled * to_strength + source_pooled.to(pooled) * (1.0 - to_strength)
        elif source_pooled is not None:
            new_options["pooled_output"] = source_pooled
        result.append([mixed, new_options])
    return result


def concat(conditioning_to: Conditioning, conditioning_from: Conditioning) -> Conditioning:
    """Each `to` entry with `from`'s tokens appended along the token axis (options of `to` kept)."""
    source = _first(conditioning_from, "ConditioningConcat")[0]
    result = []
    for cond, options in conditioning_to:
        if source.shape[-1] != cond.shape[-1]:
            raise ValueError(f"ConditioningConcat: feature widths differ ({cond.shape[-1]} vs {source.shape[-1]})")
        result.append([torch.cat([cond, source.to(cond)], dim=1), dict(options)])
    return result


def zero_out(conditioning: Conditioning) -> Conditioning:
    """Zeros of the same shapes (a true "no prompt" for SDXL-style models), pooled output included."""
    result = []
    for cond, options in conditioning:
        new_options = dict(options)
        if options.get("pooled_output") is not None:
            new_options["pooled_output"] = torch.zeros_like(options["pooled_output"])
        result.append([torch.zeros_like(cond), new_options])
    return result


def set_area(conditioning: Conditioning, width: int, height: int, x: int, y: int, strength: float) -> Conditioning:
    """Restrict to a pixel rectangle; stored in latent units (÷8) as ComfyUI's ``(h, w, y, x)``."""
    return with_options(
        conditioning, area=(height // 8, width // 8, y // 8, x // 8), strength=strength, set_area_to_bounds=False
    )


def set_area_percentage(
    conditioning: Conditioning, width: float, height: float, x: float, y: float, strength: float
) -> Conditioning:
    """Restrict to a rectangle given as fractions of the image: ``("percentage", h, w, y, x)``."""
    return with_options(
        conditioning, area=("percentage", height, width, y, x), strength=strength, set_area_to_bounds=False
    )


def set_mask(conditioning: Conditioning, mask: torch.Tensor, strength: float, bounds: bool) -> Conditioning:
    """Weight the entry spatially by `mask` ([H, W] or [B, H, W]); `bounds` crops to the mask's box."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ValueError(f"mask must be [H, W] or [B, H, W], got shape {tuple(mask.shape)}")
    return with_options(conditioning, mask=mask, set_area_to_bounds=bounds, mask_strength=strength)


def set_timestep_range(conditioning: Conditioning, start: float, end: float) -> Conditioning:
    """Apply only while sampling progress is within [start, end] (0 = first step, 1 = last).

    start > end is stored as given (the entry then never applies), as ComfyUI does.
    """
    return with_options(conditioning, timestep_start=start, timestep_end=end)
