"""Saving images beyond SaveImage: animated WEBP / PNG files, and SaveImageWebsocket, which sends
full-size PNGs to the client as binary websocket frames (ComfyUI's preview framing) instead of
writing files. The websocket node reaches the server only through engine.runtime.report_progress.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.imagefiles import save_target, write_new_file
from engine.runtime import report_progress, services
from nodes.image import SaveImage, tensor_to_pil

_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}
_EXIF_MODEL, _EXIF_MAKE = 0x0110, 0x010F


def _metadata(prompt: Any, extra_pnginfo: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(key, JSON) pairs to embed, or none when --disable-metadata is set."""
    if services().settings.get("disable_metadata", False):
        return []
    pairs = [("prompt", json.dumps(prompt))] if prompt is not None else []
    return pairs + [(str(key), json.dumps(value)) for key, value in (extra_pnginfo or {}).items()]


class _AnimatedSave(SaveImage):
    """Shared by the animated savers: one file holding every image of the batch as a frame."""

    CATEGORY = "image/animation"
    DESCRIPTION = "Saves the batch as one animated file in the output folder, the workflow embedded."
    extension = ""

    def _encode(self, frames: list[Image.Image], duration_ms: int, metadata: list[tuple[str, str]],
                **options: Any) -> bytes:
        raise NotImplementedError

    def _save(self, images, filename_prefix: str, fps: float, prompt, extra_pnginfo, **options: Any):
        root = services().paths.get_directory_by_type(self.folder_type)
        target = save_target(root, filename_prefix, int(images.shape[2]), int(images.shape[1]))
        frames = [tensor_to_pil(image) for image in images]
        data = self._encode(frames, int(1000.0 / fps), _metadata(prompt, extra_pnginfo), **options)
        name, _ = write_new_file(target.directory, lambda c: f"{target.filename}_{c:05}_.{self.extension}",
                                 target.counter, data)
        return {"ui": {"images": [{"filename": name, "subfolder": target.subfolder, "type": self.folder_type}],
                       "animated": (True,)}}


class SaveAnimatedWEBP(_AnimatedSave):
    FUNCTION = "save_images"
    extension = "webp"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",),
                             "filename_prefix": ("STRING", {"default": "ComfyUI"}),
                             "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                             "lossless": ("BOOLEAN", {"default": True}),
                             "quality": ("INT", {"default": 80, "min": 0, "max": 100}),
                             "method": (list(_WEBP_METHODS),)},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_images(self, images, fps, filename_prefix, lossless, quality, method, prompt=None, extra_pnginfo=None):
        return self._save(images, filename_prefix, fps, prompt, extra_pnginfo, lossless=lossless,
                          quality=quality, method=_WEBP_METHODS[method])

    def _encode(self, frames, duration_ms, metadata, *, lossless: bool, quality: int, method: int) -> bytes:
        # As ComfyUI: the prompt in EXIF "Model" as "prompt:{json}", other entries from "Make" down.
        exif = frames[0].getexif()
        tag = _EXIF_MAKE
        for key, value in metadata:
            if key == "prompt":
                exif[_EXIF_MODEL] = f"prompt:{value}"
            else:
                exif[tag] = f"{key}:{value}"
                tag -= 1
        buffer = io.BytesIO()
        frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:], duration=duration_ms,
                       exif=exif, lossless=lossless, quality=quality, method=method)
        return buffer.getvalue()


class SaveAnimatedPNG(_AnimatedSave):
    FUNCTION = "save_images"
    extension = "png"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",),
                             "filename_prefix": ("STRING", {"default": "ComfyUI"}),
                             "fps": ("FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                             "compress_level": ("INT", {"default": 4, "min": 0, "max": 9})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_images(self, images, fps, compress_level, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        return self._save(images, filename_prefix, fps, prompt, extra_pnginfo, compress_level=compress_level)

    def _encode(self, frames, duration_ms, metadata, *, compress_level: int) -> bytes:
        # As ComfyUI: private "comf" chunks after the image data (keyword NUL JSON), so readers that
        # stop at the first frame are not slowed down by the workflow.
        info = PngInfo()
        for key, value in metadata:
            info.add(b"comf", key.encode("latin-1") + b"\0" + value.encode("latin-1"), after_idat=True)
        buffer = io.BytesIO()
        frames[0].save(buffer, format="PNG", pnginfo=info, compress_level=compress_level, save_all=True,
                       duration=duration_ms, append_images=frames[1:])
        return buffer.getvalue()


class SaveImageWebsocket:
    CATEGORY = "api/image"
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    DESCRIPTION = ("Sends each image as a full-size PNG binary websocket frame to the client that queued "
                   "the prompt (ComfyUI's preview framing: 4-byte event type, 4-byte image type, PNG); "
                   "nothing is written to disk and no metadata is embedded.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}}

    def save_images(self, images):
        total = int(images.shape[0])
        for step, image in enumerate(images):
            buffer = io.BytesIO()
            tensor_to_pil(image).save(buffer, format="PNG", compress_level=1)
            report_progress(step, total, ("PNG", buffer.getvalue()))
        return {}

    @classmethod
    def IS_CHANGED(cls, images):
        return time.time()  # always send again: the images went to a socket, not to a cache


NODE_CLASS_MAPPINGS = {
    "SaveAnimatedWEBP": SaveAnimatedWEBP,
    "SaveAnimatedPNG": SaveAnimatedPNG,
    "SaveImageWebsocket": SaveImageWebsocket,
}
