"""Image nodes: load, save, preview, scale, invert, batch, crop. IMAGE is [B,H,W,C] float 0..1."""

from __future__ import annotations

import hashlib
import io
import json
import reprlib
import secrets
import string
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence
from PIL.PngImagePlugin import PngInfo

from diffusion.image_ops import UPSCALE_METHODS, scale_images
from engine.imagefiles import save_target, write_new_file
from engine.paths import contained_path
from engine.runtime import services
from nodes import MAX_RESOLUTION

_ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}


# ---- helpers ------------------------------------------------------------------------------
def resolve_image_path(name: str) -> Path:
    """A LoadImage name ("sub/a.png", optionally "a.png [output]") -> contained absolute path."""
    paths = services().paths
    kind = "input"
    for suffix, annotated_kind in _ANNOTATIONS.items():
        if name.endswith(suffix):
            name, kind = name[: -len(suffix)], annotated_kind
            break
    return contained_path(paths.get_directory_by_type(kind), name)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """One PIL frame -> [1,H,W,3] float32 in 0..1 (16-bit grayscale scaled properly)."""
    if image.mode == "I":
        image = image.point(lambda v: v * (1 / 255))
    elif image.mode == "I;16":
        image = image.convert("I").point(lambda v: v * (1 / 257))
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy())[None]


def alpha_mask(image: Image.Image) -> torch.Tensor | None:
    """ComfyUI's MASK from alpha: 1 - alpha, so transparent pixels are masked (1.0)."""
    if "A" in image.getbands():
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
        return 1.0 - torch.from_numpy(alpha.copy())
    if image.mode == "P" and "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        return 1.0 - torch.from_numpy(alpha.copy())
    return None


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One [H,W,C] image in 0..1 -> 8-bit PIL image (RGB, RGBA or L)."""
    array = np.clip(255.0 * image.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def _png_bytes(image: Image.Image, metadata: PngInfo | None, compress_level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=metadata, compress_level=compress_level)
    return buffer.getvalue()


# ---- nodes --------------------------------------------------------------------------------
class LoadImage:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    DESCRIPTION = "Loads an image from the input folder; the mask is 1 where the image is transparent."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (sorted(services().paths.list_input_images()), {"image_upload": True})}}

    def load_image(self, image: str):
        path = resolve_image_path(image)
        with Image.open(path) as opened:
            frames, masks, size = [], [], None
            for frame in ImageSequence.Iterator(opened):
                frame = ImageOps.exif_transpose(frame)
                if size is None:
                    size = frame.size
                elif frame.size != size:
                    continue  # ComfyUI skips frames whose size differs from the first
                frames.append(pil_to_tensor(frame))
                masks.append(alpha_mask(frame))
                if opened.format == "MPO":
                    break
        if all(m is None for m in masks):  # no alpha anywhere: ComfyUI's 64x64 empty mask
            mask = torch.zeros((len(frames), 64, 64), dtype=torch.float32)
        else:
            height, width = frames[0].shape[1:3]
            mask = torch.stack([m if m is not None else torch.zeros((height, width)) for m in masks])
        return (torch.cat(frames), mask)

    @classmethod
    def IS_CHANGED(cls, image: str):
        digest = hashlib.sha256()
        with open(resolve_image_path(image), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, image: str):
        try:
            path = resolve_image_path(image)
        except Exception as exc:  # PathEscapeError, bad annotation
            return f"Invalid image file: {image} ({exc})"
        if not path.is_file():
            return f"Invalid image file: {image}"
        return True


class SaveImage:
    CATEGORY = "image"
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the input images to your output folder as PNG with the workflow embedded."
    folder_type = "output"
    compress_level = 4

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
                    "images": ("IMAGE", {"tooltip": "The images to save."}),
                    "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip":
                                        "The prefix for the file to save. This may include formatting "
                                        "information such as %date:yyyy-MM-dd% or %width%."})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def _prefix(self, filename_prefix: str) -> str:
        return filename_prefix

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix: str | None = None):
        """Refuse a prefix that would leave the output folder before anything runs."""
        if filename_prefix is None:  # linked (or PreviewImage): checked when saving
            return True
        try:
            save_target(services().paths.get_directory_by_type(cls.folder_type), filename_prefix, 1, 1)
        except ValueError as exc:  # PathEscapeError, InvalidFileName
            return f"filename_prefix {reprlib.repr(filename_prefix)} is not allowed: {exc}"
        return True

    def save_images(self, images: torch.Tensor, filename_prefix: str = "ComfyUI", prompt=None, extra_pnginfo=None):
        runtime_services = services()
        root = runtime_services.paths.get_directory_by_type(self.folder_type)
        height, width = int(images.shape[1]), int(images.shape[2])
        target = save_target(root, self._prefix(filename_prefix), width, height)
        metadata = None
        if not runtime_services.settings.get("disable_metadata", False):
            metadata = PngInfo()
            if prompt is not None:
                metadata.add_text("prompt", json.dumps(prompt))
            for key, value in (extra_pnginfo or {}).items():
                metadata.add_text(str(key), json.dumps(value))
        results = []
        counter = target.counter
        for batch_number, image in enumerate(images):
            base = target.filename.replace("%batch_num%", str(batch_number))
            data = _png_bytes(tensor_to_pil(image), metadata, self.compress_level)
            name, counter = write_new_file(target.directory, lambda c: f"{base}_{c:05}_.png", counter, data)
            results.append({"filename": name, "subfolder": target.subfolder, "type": self.folder_type})
            counter += 1
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    DESCRIPTION = "Shows the images in the editor (saved to the temp folder)."
    folder_type = "temp"
    compress_level = 1

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def _prefix(self, filename_prefix: str) -> str:
        suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
        return f"ComfyUI_temp_{suffix}"


class ImageScale:
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    upscale_methods = list(UPSCALE_METHODS)  # ComfyUI's class attributes; packs build combos from them
    crop_methods = ["disabled", "center"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "upscale_method": (list(UPSCALE_METHODS),),
                             "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                             "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                             "crop": (list(cls.crop_methods),)}}

    def upscale(self, image: torch.Tensor, upscale_method: str, width: int, height: int, crop: str):
        if width == 0 and height == 0:
            return (image,)
        old_h, old_w = image.shape[1], image.shape[2]
        if width == 0:
            width = max(1, round(old_w * height / old_h))
        elif height == 0:
            height = max(1, round(old_h * width / old_w))
        return (scale_images(image, width, height, upscale_method, crop),)


class ImageScaleBy:
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "upscale_method": (list(UPSCALE_METHODS),),
                             "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01})}}

    def upscale(self, image: torch.Tensor, upscale_method: str, scale_by: float):
        width = max(1, round(image.shape[2] * scale_by))
        height = max(1, round(image.shape[1] * scale_by))
        return (scale_images(image, width, height, upscale_method),)


class ImageInvert:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def invert(self, image: torch.Tensor):
        return (1.0 - image,)


class ImageBatch:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    def batch(self, image1: torch.Tensor, image2: torch.Tensor):
        if image1.shape[1:3] != image2.shape[1:3]:
            image2 = scale_images(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        if image1.shape[3] != image2.shape[3]:
            channels = min(image1.shape[3], image2.shape[3])
            image1, image2 = image1[..., :channels], image2[..., :channels]
        return (torch.cat((image1, image2), dim=0),)


class EmptyImage:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                             "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                             "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1,
                                               "display": "color"})}}

    def generate(self, width: int, height: int, batch_size: int = 1, color: int = 0):
        rgb = torch.tensor([((color >> 16) & 0xFF) / 255.0, ((color >> 8) & 0xFF) / 255.0,
                            (color & 0xFF) / 255.0], dtype=torch.float32)
        return (rgb.expand(batch_size, height, width, 3).clone(),)


class ImageCrop:
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "crop"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                             "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                             "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                             "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1})}}

    def crop(self, image: torch.Tensor, width: int, height: int, x: int, y: int):
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (image[:, y:y + height, x:x + width, :],)


NODE_CLASS_MAPPINGS = {
    "LoadImage": LoadImage,
    "SaveImage": SaveImage,
    "PreviewImage": PreviewImage,
    "ImageScale": ImageScale,
    "ImageScaleBy": ImageScaleBy,
    "ImageInvert": ImageInvert,
    "ImageBatch": ImageBatch,
    "EmptyImage": EmptyImage,
    "ImageCrop": ImageCrop,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImage": "Load Image",
    "SaveImage": "Save Image",
    "PreviewImage": "Preview Image",
    "ImageScale": "Upscale Image",
    "ImageScaleBy": "Upscale Image By",
    "ImageInvert": "Invert Image",
    "ImageBatch": "Batch Images",
    "EmptyImage": "EmptyImage",
    "ImageCrop": "Image Crop",
}
