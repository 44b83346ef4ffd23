"""Model loader nodes: checkpoints, standalone VAE and UNet files (ComfyUI names and inputs)."""

from __future__ import annotations

import logging
import re

from diffusion.checkpoint import load_checkpoint, load_unet_file, load_vae_file
from engine import runtime

log = logging.getLogger(__name__)


def _files(folder: str) -> list[str]:
    """Model files for a COMBO; empty when listed outside a runtime (no services yet)."""
    try:
        return runtime.services().paths.get_filename_list(folder)
    except LookupError:
        return []


def _resolve(folder: str, name: str):
    """Full path of a listed model file (contained in the folder; FileNotFoundError otherwise)."""
    return runtime.services().paths.get_full_path_or_raise(folder, name)


def _manager():
    manager = runtime.services().model_manager
    if manager is None:
        raise RuntimeError("no model manager configured: start the runtime through app.bootstrap")
    return manager


class CheckpointLoaderSimple:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (_files("checkpoints"), {"tooltip": "The checkpoint to load."})}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = (
        "The denoising model.",
        "The text encoder(s) for prompts.",
        "The VAE that moves images to and from latent space.",
    )
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = (
        "Loads an SD1.x / SD2.x / SDXL checkpoint; family and prediction type are detected from the file."
    )

    def load_checkpoint(self, ckpt_name):
        loaded = load_checkpoint(_resolve("checkpoints", ckpt_name), _manager())
        return (loaded.model, loaded.clip, loaded.vae)


class CheckpointLoader(CheckpointLoaderSimple):
    """Deprecated ComfyUI loader. The structure is detected from the file; the YAML config is only
    read for its ``parameterization`` (``"v"`` → v-prediction), which shapes cannot tell."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"config_name": (_files("configs"),), "ckpt_name": (_files("checkpoints"),)}}

    CATEGORY = "advanced/loaders"
    DEPRECATED = True

    def load_checkpoint(self, config_name, ckpt_name):  # type: ignore[override]
        config_text = _resolve("configs", config_name).read_text(encoding="utf-8", errors="replace")
        overrides = {"prediction": "v_prediction"} if _V_PARAMETERIZATION.search(config_text) else None
        loaded = load_checkpoint(_resolve("checkpoints", ckpt_name), _manager(), overrides=overrides)
        return (loaded.model, loaded.clip, loaded.vae)


_V_PARAMETERIZATION = re.compile(r"""^\s*parameterization:\s*["']?v["']?\s*(#.*)?$""", re.MULTILINE)


class VAELoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": (_files("vae"),)}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a standalone VAE file, LDM or diffusers layout."

    def load_vae(self, vae_name):
        return (load_vae_file(_resolve("vae", vae_name), _manager()),)


WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]


class UNETLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"unet_name": (_files("diffusion_models"),), "weight_dtype": (WEIGHT_DTYPES,)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "Loads a UNet-only file (original LDM or diffusers layout)."

    def load_unet(self, unet_name, weight_dtype="default"):
        if weight_dtype != "default":
            # fp8 storage saves memory only; results equal the default dtype, which we use instead.
            log.warning(
                "weight_dtype %s is not supported yet; loading %s in the default dtype",
                weight_dtype,
                unet_name,
            )
        return (load_unet_file(_resolve("diffusion_models", unet_name), _manager()),)


NODE_CLASS_MAPPINGS = {
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "CheckpointLoader": CheckpointLoader,
    "VAELoader": VAELoader,
    "UNETLoader": UNETLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CheckpointLoaderSimple": "Load Checkpoint",
    "CheckpointLoader": "Load Checkpoint With Config (DEPRECATED)",
    "VAELoader": "Load VAE",
    "UNETLoader": "Load Diffusion Model",
}
