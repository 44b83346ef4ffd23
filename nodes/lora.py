"""LoRA and hypernetwork nodes (ComfyUI names and inputs): LoraLoader, LoraLoaderModelOnly, the design
card's ``LoRA``, HypernetworkLoader."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from diffusion.hypernetwork import load_hypernetwork
from diffusion.lora.apply import apply_lora
from diffusion.lora.loader import describe_unused, read_lora_file
from nodes.loaders import _files, _resolve

log = logging.getLogger(__name__)

_STRENGTH = {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}


class LoraLoader:
    """Patch a MODEL and a CLIP with a LoRA / LyCORIS file; clones, so the inputs stay untouched.

    The file's tensors are kept on the node instance (as ComfyUI does), so a strength change
    re-reads neither the LoRA nor the checkpoint.
    """

    def __init__(self) -> None:
        self._loaded: tuple[tuple[Path, int, int], dict[str, torch.Tensor]] | None = None

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
                "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
                "lora_name": (_files("loras"), {"tooltip": "The name of the LoRA."}),
                "strength_model": ("FLOAT", {**_STRENGTH, "tooltip": "How strongly to modify the diffusion model. This value can be negative."}),
                "strength_clip": ("FLOAT", {**_STRENGTH, "tooltip": "How strongly to modify the CLIP model. This value can be negative."}),
            }
        }

    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")
    FUNCTION = "load_lora"
    CATEGORY = "loaders"
    DESCRIPTION = (
        "Applies a LoRA or LyCORIS file (kohya, diffusers/PEFT, LoCon, LoHa, LoKr, DoRA, …) to the model and "
        "its text encoders. Several LoRA nodes can be chained."
    )

    def _state_dict(self, lora_name: str) -> dict[str, torch.Tensor]:
        path = _resolve("loras", lora_name)
        stat = path.stat()
        identity = (path, stat.st_mtime_ns, stat.st_size)
        if self._loaded is None or self._loaded[0] != identity:
            self._loaded = (identity, read_lora_file(path))
        return self._loaded[1]

    def load_lora(self, model, clip, lora_name, strength_model, strength_clip):
        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        applied = apply_lora(model, clip, self._state_dict(lora_name), strength_model, strength_clip, lora_name)
        result = (applied.model, applied.clip)
        if not applied.unused_keys:
            return result
        message = f"{lora_name}: {describe_unused(applied.unused_keys)}"
        log.warning("%s", message)
        return {"ui": {"text": [message]}, "result": result}


class LoraLoaderModelOnly(LoraLoader):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "lora_name": (_files("loras"),),
                "strength_model": ("FLOAT", dict(_STRENGTH)),
            }
        }

    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("The modified diffusion model.",)
    FUNCTION = "load_lora_model_only"
    DESCRIPTION = "Applies a LoRA or LyCORIS file to the diffusion model only (its text-encoder part is skipped)."

    def load_lora_model_only(self, model, lora_name, strength_model):
        if strength_model == 0:
            return (model,)
        out = self.load_lora(model, None, lora_name, strength_model, 0)
        if isinstance(out, dict):
            return {"ui": out["ui"], "result": out["result"][:1]}
        return out[:1]


class LoRA(LoraLoader):
    """The design card's name for the LoRA node: the same inputs, outputs and implementation."""


class HypernetworkLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "hypernetwork_name": (_files("hypernetworks"),),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_hypernetwork"
    CATEGORY = "loaders"
    DESCRIPTION = "Applies an A1111 hypernetwork to the attention key/value inputs (self- and cross-attention)."

    def load_hypernetwork(self, model, hypernetwork_name, strength):
        hypernetwork = load_hypernetwork(_resolve("hypernetworks", hypernetwork_name), strength)
        patched = model.clone()
        patched.set_model_attn1_patch(hypernetwork)
        patched.set_model_attn2_patch(hypernetwork)
        return (patched,)


NODE_CLASS_MAPPINGS = {
    "LoraLoader": LoraLoader,
    "LoraLoaderModelOnly": LoraLoaderModelOnly,
    "LoRA": LoRA,
    "HypernetworkLoader": HypernetworkLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoraLoader": "Load LoRA",
    "LoraLoaderModelOnly": "LoraLoaderModelOnly",
    "LoRA": "LoRA",
    "HypernetworkLoader": "HypernetworkLoader",
}
