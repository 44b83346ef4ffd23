"""Mask nodes (ComfyUI's "mask" category and the Morphology node); the work is in diffusion.mask_ops."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from diffusion import mask_ops
from engine.runtime import services
from nodes import MAX_RESOLUTION
from nodes.image import LoadImage, PreviewImage, resolve_image_path

_POSITION = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}
_SIZE = {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}


class LoadImageMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"
    DESCRIPTION = "Loads one channel of an image as a mask; for alpha the mask is 1 where it is transparent."
    _channels = ["alpha", "red", "green", "blue"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (sorted(services().paths.list_input_images()), {"image_upload": True}),
                             "channel": (cls._channels,)}}

    def load_image(self, image: str, channel: str):
        with Image.open(resolve_image_path(image)) as opened:
            picture = ImageOps.exif_transpose(opened)
            if picture.mode == "I":
                picture = picture.point(lambda v: v * (1 / 255))
            picture = picture.convert("RGBA")
        band = np.asarray(picture.getchannel(channel[0].upper()), dtype=np.float32) / 255.0
        mask = torch.from_numpy(band.copy())
        return ((1.0 - mask if channel == "alpha" else mask)[None],)

    # the same file, so the same change detection and existence check as LoadImage
    IS_CHANGED = LoadImage.IS_CHANGED
    VALIDATE_INPUTS = LoadImage.VALIDATE_INPUTS


class MaskToImage:
    CATEGORY = "mask"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mask_to_image"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    def mask_to_image(self, mask):
        return (mask_ops.to_image(mask),)


class ImageToMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "channel": (list(mask_ops.IMAGE_CHANNELS),)}}

    def image_to_mask(self, image, channel):
        return (mask_ops.from_image(image, channel),)


class ImageColorToMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1,
                                               "display": "color"})}}

    def image_to_mask(self, image, color):
        return (mask_ops.from_color(image, color),)


class SolidMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "solid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "width": ("INT", _SIZE), "height": ("INT", _SIZE)}}

    def solid(self, value, width, height):
        return (mask_ops.solid(value, width, height),)


class InvertMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    def invert(self, mask):
        return (1.0 - mask,)


class CropMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "crop"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "x": ("INT", _POSITION), "y": ("INT", _POSITION),
                             "width": ("INT", _SIZE), "height": ("INT", _SIZE)}}

    def crop(self, mask, x, y, width, height):
        return (mask_ops.crop(mask, x, y, width, height),)


class MaskComposite:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "combine"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"destination": ("MASK",), "source": ("MASK",),
                             "x": ("INT", _POSITION), "y": ("INT", _POSITION),
                             "operation": (list(mask_ops.MASK_OPERATIONS),)}}

    def combine(self, destination, source, x, y, operation):
        return (mask_ops.composite(destination, source, x, y, operation),)


class FeatherMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "feather"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",), "left": ("INT", _POSITION), "top": ("INT", _POSITION),
                             "right": ("INT", _POSITION), "bottom": ("INT", _POSITION)}}

    def feather(self, mask, left, top, right, bottom):
        return (mask_ops.feather(mask, left, top, right, bottom),)


class GrowMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "expand_mask"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",),
                             "expand": ("INT", {"default": 0, "min": -MAX_RESOLUTION, "max": MAX_RESOLUTION,
                                                "step": 1}),
                             "tapered_corners": ("BOOLEAN", {"default": True})}}

    def expand_mask(self, mask, expand, tapered_corners):
        return (mask_ops.grow(mask, expand, tapered_corners),)


class ThresholdMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",),
                             "value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})}}

    def image_to_mask(self, mask, value):
        return (mask_ops.threshold(mask, value),)


class MaskPreview(PreviewImage):
    CATEGORY = "mask"
    FUNCTION = "execute"
    DESCRIPTION = "Shows the mask in the editor as a grey image (saved to the temp folder)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def execute(self, mask, prompt=None, extra_pnginfo=None):
        return self.save_images(mask_ops.to_image(mask), prompt=prompt, extra_pnginfo=extra_pnginfo)


class Morphology:
    CATEGORY = "image/postprocessing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "process"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "operation": (list(mask_ops.MORPHOLOGY_OPERATIONS),),
                             "kernel_size": ("INT", {"default": 3, "min": 3, "max": 999, "step": 1})}}

    def process(self, image, operation, kernel_size):
        return (mask_ops.morphology(image, operation, kernel_size),)


NODE_CLASS_MAPPINGS = {
    "LoadImageMask": LoadImageMask,
    "MaskToImage": MaskToImage,
    "ImageToMask": ImageToMask,
    "ImageColorToMask": ImageColorToMask,
    "SolidMask": SolidMask,
    "InvertMask": InvertMask,
    "CropMask": CropMask,
    "MaskComposite": MaskComposite,
    "FeatherMask": FeatherMask,
    "GrowMask": GrowMask,
    "ThresholdMask": ThresholdMask,
    "MaskPreview": MaskPreview,
    "Morphology": Morphology,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImageMask": "Load Image (as Mask)",
    "MaskToImage": "Convert Mask to Image",
    "ImageToMask": "Convert Image to Mask",
    "Morphology": "ImageMorphology",
}
