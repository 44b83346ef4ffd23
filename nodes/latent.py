"""Latent nodes: empty latents, VAE encode/decode (plain and tiled), resizing, batches, .latent files.

LATENT ``samples`` are raw VAE latents, as in ComfyUI; the MODEL scales them inside the sampler.
"""

from __future__ import annotations

import hashlib
import json

import torch

from diffusion import latent_ops
from diffusion.latent_formats import SD15
from engine import runtime
from engine.imagefiles import save_target, write_new_file
from engine.paths import contained_path

from nodes import MAX_RESOLUTION


class EmptyLatentImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8}),
                "height": ("INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "generate"
    CATEGORY = "latent"
    DESCRIPTION = "A batch of empty (zero) latents to start text-to-image sampling from."

    def generate(self, width, height, batch_size=1, model=None):
        latent_format = getattr(model, "latent_format", SD15)
        down = latent_format.downscale
        samples = torch.zeros(batch_size, latent_format.channels, height // down, width // down)
        return ({"samples": samples},)


class EmptyLatent(EmptyLatentImage):
    """EmptyLatentImage plus an optional MODEL whose latent format sets the channels and downscale."""

    @classmethod
    def INPUT_TYPES(cls):
        types = super().INPUT_TYPES()
        types["optional"] = {"model": ("MODEL",)}
        return types


class VAEDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "vae": ("VAE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "latent"
    DESCRIPTION = "Decodes latents into images (tiles automatically when memory is short)."

    def decode(self, vae, samples):
        return (vae.decode(samples["samples"]),)


class VAEEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent"
    DESCRIPTION = "Encodes images into latents (tiles automatically when memory is short)."

    def encode(self, vae, pixels):
        return ({"samples": vae.encode(pixels[..., :3])},)


def _tiled_inputs(tile_step: int) -> dict:
    return {
        "tile_size": ("INT", {"default": 512, "min": 64, "max": 4096, "step": tile_step}),
        "overlap": ("INT", {"default": 64, "min": 0, "max": 4096, "step": 32}),
        # Video VAEs only; accepted so ComfyUI workflows load unchanged.
        "temporal_size": ("INT", {"default": 64, "min": 8, "max": 4096, "step": 4}),
        "temporal_overlap": ("INT", {"default": 8, "min": 4, "max": 4096, "step": 4}),
    }


class VAEDecodeTiled:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "vae": ("VAE",), **_tiled_inputs(32)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    CATEGORY = "_for_testing"

    def decode(self, vae, samples, tile_size=512, overlap=64, temporal_size=64, temporal_overlap=8):
        return (vae.decode_tiled(samples["samples"], tile_size, min(overlap, tile_size // 4)),)


class VAEEncodeTiled:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pixels": ("IMAGE",), "vae": ("VAE",), **_tiled_inputs(64)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "_for_testing"

    def encode(self, vae, pixels, tile_size=512, overlap=64, temporal_size=64, temporal_overlap=8):
        samples = vae.encode_tiled(pixels[..., :3], tile_size, min(overlap, tile_size // 4))
        return ({"samples": samples},)


class LatentUpscale:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "samples": ("LATENT",),
                "upscale_method": (list(latent_ops.UPSCALE_METHODS),),
                "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
                "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
                "crop": (list(latent_ops.CROP_METHODS),),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"

    def upscale(self, samples, upscale_method, width, height, crop):
        return (latent_ops.upscale(samples, upscale_method, width, height, crop),)


class LatentUpscaleBy:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "samples": ("LATENT",),
                "upscale_method": (list(latent_ops.UPSCALE_METHODS),),
                "scale_by": ("FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"

    def upscale(self, samples, upscale_method, scale_by):
        return (latent_ops.upscale_by(samples, upscale_method, scale_by),)


class LatentFromBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "samples": ("LATENT",),
                "batch_index": ("INT", {"default": 0, "min": 0, "max": 63}),
                "length": ("INT", {"default": 1, "min": 1, "max": 64}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "frombatch"
    CATEGORY = "latent/batch"

    def frombatch(self, samples, batch_index, length):
        return (latent_ops.from_batch(samples, batch_index, length),)


class RepeatLatentBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "amount": ("INT", {"default": 1, "min": 1, "max": 64})}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "repeat"
    CATEGORY = "latent/batch"

    def repeat(self, samples, amount):
        return (latent_ops.repeat_batch(samples, amount),)


class SaveLatent:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "samples": ("LATENT",),
                "filename_prefix": ("STRING", {"default": "latents/ComfyUI"}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing"

    def save(self, samples, filename_prefix="latents/ComfyUI", prompt=None, extra_pnginfo=None):
        services = runtime.services()
        target = save_target(services.paths.output_directory, filename_prefix, 0, 0)
        metadata: dict[str, str] = {}
        if not services.settings.get("disable_metadata"):
            if prompt is not None:
                metadata["prompt"] = json.dumps(prompt)
            for key, value in (extra_pnginfo or {}).items():
                metadata[key] = json.dumps(value)
        data = latent_ops.latent_file_bytes(samples["samples"], metadata)
        filename, _ = write_new_file(
            target.directory, lambda counter: f"{target.filename}_{counter:05}_.latent", target.counter, data
        )
        return {"ui": {"latents": [{"filename": filename, "subfolder": target.subfolder, "type": "output"}]}}


def _input_latents() -> list[str]:
    try:
        root = runtime.services().paths.input_directory
    except LookupError:
        return []
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_file() and p.name.endswith(".latent"))


class LoadLatent:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent": (_input_latents(),)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @staticmethod
    def _path(latent: str):
        return contained_path(runtime.services().paths.input_directory, latent)

    def load(self, latent):
        return ({"samples": latent_ops.load_latent_file(self._path(latent))},)

    @classmethod
    def IS_CHANGED(cls, latent):
        return hashlib.sha256(cls._path(latent).read_bytes()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, latent):
        try:
            if not cls._path(latent).is_file():
                return f"Invalid latent file: {latent}"
        except ValueError as exc:
            return f"Invalid latent file: {exc}"
        return True


NODE_CLASS_MAPPINGS = {
    "EmptyLatent": EmptyLatent,
    "EmptyLatentImage": EmptyLatentImage,
    "VAEDecode": VAEDecode,
    "VAEEncode": VAEEncode,
    "VAEDecodeTiled": VAEDecodeTiled,
    "VAEEncodeTiled": VAEEncodeTiled,
    "LatentUpscale": LatentUpscale,
    "LatentUpscaleBy": LatentUpscaleBy,
    "LatentFromBatch": LatentFromBatch,
    "RepeatLatentBatch": RepeatLatentBatch,
    "SaveLatent": SaveLatent,
    "LoadLatent": LoadLatent,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "EmptyLatent": "Empty Latent",
    "EmptyLatentImage": "Empty Latent Image",
    "VAEDecode": "VAE Decode",
    "VAEEncode": "VAE Encode",
    "VAEDecodeTiled": "VAE Decode (Tiled)",
    "VAEEncodeTiled": "VAE Encode (Tiled)",
    "LatentUpscale": "Upscale Latent",
    "LatentUpscaleBy": "Upscale Latent By",
    "LatentFromBatch": "Latent From Batch",
    "RepeatLatentBatch": "Repeat Latent Batch",
    "SaveLatent": "SaveLatent",
    "LoadLatent": "LoadLatent",
}
