"""Save nodes for models (ComfyUI's CheckpointSave, CLIPSave, VAESave, ModelSave, LoraSave).

Files are ``.safetensors`` in the output folder, named ``<prefix>_<counter>_.safetensors`` as
ComfyUI names them, written atomically and never over an existing file. They hold the weights the
value runs with (patches such as merges and LoRAs merged in), in the layouts of the files people
download, so our loaders, ComfyUI and other tools read them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import torch

from diffusion.checkpoint.export import (
    checkpoint_metadata,
    checkpoint_state_dict,
    clip_files,
    safetensors_file_bytes,
    vae_weights,
)
from diffusion.merge.lora_extract import LORA_TYPES, UNET_KEY_PREFIX, extract_lora
from engine import runtime
from engine.errors import PathEscapeError
from engine.imagefiles import SaveTarget, save_target, write_new_file

CATEGORY = "advanced/model_merging"
_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def _target(filename_prefix: str) -> SaveTarget:
    return save_target(runtime.services().paths.output_directory, filename_prefix, 0, 0)


def _provenance(prompt, extra_pnginfo) -> dict[str, str]:
    """The prompt and workflow as ComfyUI embeds them (nothing with --disable-metadata)."""
    if runtime.services().settings.get("disable_metadata", False):
        return {}
    metadata = {"prompt": json.dumps(prompt) if prompt is not None else ""}
    metadata.update({str(key): json.dumps(value) for key, value in (extra_pnginfo or {}).items()})
    return metadata


def _write(target: SaveTarget, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> dict[str, str]:
    """Write one file under the first free counter; returns its ui entry."""
    data = safetensors_file_bytes(state, metadata)
    name, _ = write_new_file(
        target.directory, lambda counter: f"{target.filename}_{counter:05}_.safetensors", target.counter, data
    )
    return {"filename": name, "subfolder": target.subfolder, "type": "output"}


class _SaveNode:
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix: str | None = None):
        """Refuse a prefix that would leave the output folder before anything runs."""
        if filename_prefix is None:
            return True
        try:
            _target(filename_prefix)
        except PathEscapeError as exc:
            return f"filename_prefix {filename_prefix!r} is not allowed: {exc}"
        return True


class CheckpointSave(_SaveNode):
    DESCRIPTION = "Saves model, CLIP and VAE as one single-file checkpoint (merges and LoRAs baked in)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "clip": ("CLIP",),
                "vae": ("VAE",),
                "filename_prefix": ("STRING", {"default": "checkpoints/ComfyUI"}),
            },
            "hidden": _HIDDEN,
        }

    def save(self, model, clip, vae, filename_prefix, prompt=None, extra_pnginfo=None):
        target = _target(filename_prefix)
        metadata = checkpoint_metadata(model, clip, f"{target.filename} {target.counter}")
        metadata.update(_provenance(prompt, extra_pnginfo))
        return {"ui": {"files": [_write(target, checkpoint_state_dict(model, clip, vae), metadata)]}}


class ModelSave(_SaveNode):
    DESCRIPTION = "Saves the diffusion model alone, in the checkpoint layout (model.diffusion_model.*)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": ("MODEL",), "filename_prefix": ("STRING", {"default": "diffusion_models/ComfyUI"})},
            "hidden": _HIDDEN,
        }

    def save(self, model, filename_prefix, prompt=None, extra_pnginfo=None):
        target = _target(filename_prefix)
        metadata = checkpoint_metadata(model, None, f"{target.filename} {target.counter}")
        metadata.update(_provenance(prompt, extra_pnginfo))
        return {"ui": {"files": [_write(target, checkpoint_state_dict(model, None, None), metadata)]}}


class CLIPSave(_SaveNode):
    DESCRIPTION = "Saves each text encoder to its own file (<prefix>_clip_l, _clip_g…), transformers layout."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"clip": ("CLIP",), "filename_prefix": ("STRING", {"default": "clip/ComfyUI"})},
            "hidden": _HIDDEN,
        }

    def save(self, clip, filename_prefix, prompt=None, extra_pnginfo=None):
        provenance = _provenance(prompt, extra_pnginfo)
        if provenance:
            provenance = {"format": "pt", **provenance}
        written = []
        for name, (state, metadata) in clip_files(clip).items():
            target = _target(f"{filename_prefix}_{name}")
            written.append(_write(target, state, {**metadata, **provenance}))
        return {"ui": {"files": written}}


class VAESave(_SaveNode):
    DESCRIPTION = "Saves the VAE as a standalone file (LDM names, as VAE downloads are)."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"vae": ("VAE",), "filename_prefix": ("STRING", {"default": "vae/ComfyUI_vae"})},
            "hidden": _HIDDEN,
        }

    def save(self, vae, filename_prefix, prompt=None, extra_pnginfo=None):
        target = _target(filename_prefix)
        # A VAE has no family (LATENT values are raw; the MODEL scales them), so none is recorded.
        metadata = _provenance(prompt, extra_pnginfo)
        return {"ui": {"files": [_write(target, vae_weights(vae), metadata)]}}


class LoraSave(_SaveNode):
    DESCRIPTION = (
        "Extracts a LoRA from a model difference (ModelMergeSubtract / CLIPMergeSubtract output) by a "
        "truncated SVD of each weight, and saves it in kohya's format."
    )
    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "filename_prefix": ("STRING", {"default": "loras/ComfyUI_extracted_lora"}),
                "rank": ("INT", {"default": 8, "min": 1, "max": 4096, "step": 1}),
                "lora_type": (list(LORA_TYPES),),
                "bias_diff": ("BOOLEAN", {"default": True}),
            },
            "optional": {
                "model_diff": ("MODEL", {"tooltip": "The ModelSubtract output to be converted to a lora."}),
                "text_encoder_diff": ("CLIP", {"tooltip": "The CLIPSubtract output to be converted to a lora."}),
            },
        }

    def save(self, filename_prefix, rank, lora_type, bias_diff, model_diff=None, text_encoder_diff=None):
        if model_diff is None and text_encoder_diff is None:
            return {}
        target = _target(filename_prefix)
        differences: dict[str, torch.Tensor] = {}
        if model_diff is not None:
            differences.update(model_diff.patched_state_dict(UNET_KEY_PREFIX))
        if text_encoder_diff is not None:
            differences.update(text_encoder_diff.get_sd())
        lora = extract_lora(differences, rank, lora_type, bias_diff)
        return {"ui": {"files": [_write(target, lora, {})]}}


NODE_CLASS_MAPPINGS = {
    "CheckpointSave": CheckpointSave,
    "CLIPSave": CLIPSave,
    "VAESave": VAESave,
    "ModelSave": ModelSave,
    "LoraSave": LoraSave,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CheckpointSave": "Save Checkpoint",
    "LoraSave": "Extract and Save Lora",
}
