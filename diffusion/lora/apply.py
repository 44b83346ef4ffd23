"""Apply one LoRA file's tensors to a MODEL and a CLIP (ComfyUI's ``load_lora_for_models``).

The handles are cloned and the patches recorded on the clones (copy-on-write: nothing touches the
shared weights until a network runs, and the checkpoint is never re-read). File keys neither
network uses (or whose shapes do not fit) are returned for the node to show; a file made for
another family, or one with no key the model knows, is a :class:`~diffusion.lora.loader.LoRAError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from diffusion.lora.keys import clip_key_map, unet_key_map
from diffusion.lora.loader import fit_patches, load_lora

# Key prefixes of text-encoder tensors: ignored (not "unknown") when only the model is patched.
TEXT_PREFIXES = ("lora_te", "text_encoder", "text_encoders.")


@dataclass(frozen=True)
class AppliedLoRA:
    """The patched handles (the inputs themselves where a strength is 0) and unused file keys."""

    model: Any
    clip: Any
    unused_keys: list[str]


def _shapes(weights: Mapping[str, Any]) -> dict[str, torch.Size]:
    """Weight shapes from ``model_state_dict()`` (tensors) or ``get_key_patches()`` ([(tensor,), …])."""
    return {key: (value if isinstance(value, torch.Tensor) else value[0][0]).shape for key, value in weights.items()}


def apply_lora(
    model: Any,
    clip: Any | None,
    state_dict: Mapping[str, torch.Tensor],
    strength_model: float,
    strength_clip: float,
    lora_name: str = "LoRA",
) -> AppliedLoRA:
    """Clones of `model` and `clip` with the LoRA recorded at the given strengths.

    `clip` None means model only: text-encoder tensors are then skipped, not reported.
    """
    shapes = _shapes(model.model_state_dict())
    key_map = unet_key_map(shapes, model.unet_config)
    if clip is not None:
        clip_shapes = _shapes(clip.get_key_patches())
        key_map.update(clip_key_map(clip_shapes))
        shapes.update(clip_shapes)
    patches, unused = load_lora(state_dict, key_map)
    if clip is None:
        unused = [key for key in unused if not key.startswith(TEXT_PREFIXES)]
    patches, misfits = fit_patches(lora_name, state_dict, patches, shapes, unused, model.family)
    unused = unused + misfits
    model_patches = {k: v for k, v in patches.items() if k.startswith("diffusion_model.")}
    clip_patches = {k: v for k, v in patches.items() if not k.startswith("diffusion_model.")}
    if strength_model != 0 and model_patches:
        model = model.clone()
        model.add_patches(model_patches, strength_model)
    if clip is not None and strength_clip != 0 and clip_patches:
        clip = clip.clone()
        clip.add_patches(clip_patches, strength_clip)
    return AppliedLoRA(model, clip, unused)
