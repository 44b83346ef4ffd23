"""Upscale model nodes (ComfyUI's UpscaleModelLoader and ImageUpscaleWithModel) over diffusion.upscale."""

from __future__ import annotations

from diffusion.upscale import load_upscale_model, upscale_image
from engine import runtime
from nodes.loaders import _files, _manager, _resolve


class UpscaleModelLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (_files("upscale_models"),)}}

    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "load_model"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads an image upscale model (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, ...; detected by spandrel)."

    def load_model(self, model_name):
        return (load_upscale_model(_resolve("upscale_models", model_name), _manager()),)


class ImageUpscaleWithModel:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"
    DESCRIPTION = "Upscales images with the model in overlapping tiles (smaller tiles when memory runs out)."

    def upscale(self, upscale_model, image):
        return (upscale_image(upscale_model, image, progress=runtime.report_progress),)


NODE_CLASS_MAPPINGS = {
    "UpscaleModelLoader": UpscaleModelLoader,
    "ImageUpscaleWithModel": ImageUpscaleWithModel,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "UpscaleModelLoader": "Load Upscale Model",
    "ImageUpscaleWithModel": "Upscale Image (using Model)",
}
