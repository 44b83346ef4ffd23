"""Merging models as ComfyUI does: one model's weights become patches on a clone of the other.

``merged = ratio · W₁ + (1 − ratio) · W₂`` per weight is recorded as a patch on a clone of model 1
whose value is model 2's ``get_key_patches`` list (its base weight and its own patches), with
strength ``1 − ratio`` and ``strength_model = ratio``; nothing is copied until the weights are
used or saved, and model 2's patches (LoRAs, earlier merges) are part of what is merged.
Add and subtract are the same record with other strengths (see each function).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

UNET_KEY_PREFIX = "diffusion_model."
# Buffers ComfyUI's CLIP merges leave alone (not weights; our CLIP values do not list them).
_CLIP_SKIPPED_SUFFIXES = (".position_ids", ".logit_scale")


class Patchable(Protocol):
    """What a merge needs of a MODEL or CLIP value (ComfyUI's ModelPatcher interface)."""

    family: str

    def clone(self) -> Any: ...

    def add_patches(
        self, patches: dict[Any, Any], strength_patch: float = 1.0, strength_model: float = 1.0
    ) -> list[Any]: ...

    def get_key_patches(self, filter_prefix: str | None = None) -> dict[str, list[Any]]: ...


def _merge(
    target: Patchable,
    source: Patchable,
    strengths: Callable[[str], tuple[float, float]],
    filter_prefix: str | None,
) -> Any:
    """A clone of `target` with every weight of `source` patched in at (strength_patch, strength_model).

    Weights of the same name but another shape (an inpainting UNet's first convolution) are left as
    the target's, with a warning, as ComfyUI does; models of different families are refused.
    """
    if target.family != source.family:
        raise ValueError(f"cannot merge a {source.family} model into a {target.family} model")
    merged = target.clone()
    for key, stack in source.get_key_patches(filter_prefix).items():
        if key.endswith(_CLIP_SKIPPED_SUFFIXES):
            continue
        strength_patch, strength_model = strengths(key)
        merged.add_patches({key: stack}, strength_patch, strength_model)
    return merged


def merge_simple(model1: Patchable, model2: Patchable, ratio: float, filter_prefix: str | None = UNET_KEY_PREFIX) -> Any:
    """``ratio · model1 + (1 − ratio) · model2`` (ratio 1 keeps model 1)."""
    return _merge(model1, model2, lambda _key: (1.0 - ratio, ratio), filter_prefix)


def merge_add(model1: Patchable, model2: Patchable, filter_prefix: str | None = UNET_KEY_PREFIX) -> Any:
    """``model1 + model2`` (typically model 2 is a difference made by :func:`merge_subtract`)."""
    return _merge(model1, model2, lambda _key: (1.0, 1.0), filter_prefix)


def merge_subtract(
    model1: Patchable, model2: Patchable, multiplier: float, filter_prefix: str | None = UNET_KEY_PREFIX
) -> Any:
    """``multiplier · (model1 − model2)``: the difference a fine-tune made, e.g. to add elsewhere."""
    return _merge(model1, model2, lambda _key: (-multiplier, multiplier), filter_prefix)


def block_ratio(name: str, ratios: Mapping[str, float], default: float) -> float:
    """The ratio of the longest prefix in `ratios` that `name` starts with, else `default` (ComfyUI's rule)."""
    best, length = default, 0
    for prefix, ratio in ratios.items():
        if name.startswith(prefix) and len(prefix) > length:
            best, length = ratio, len(prefix)
    return best


def merge_blocks(model1: Patchable, model2: Patchable, ratios: Mapping[str, float], default: float) -> Any:
    """Like :func:`merge_simple` with a ratio per UNet block prefix (``input_blocks.4.``, ``out``…)."""

    def strengths(key: str) -> tuple[float, float]:
        ratio = block_ratio(key[len(UNET_KEY_PREFIX) :], ratios, default)
        return 1.0 - ratio, ratio

    return _merge(model1, model2, strengths, UNET_KEY_PREFIX)
