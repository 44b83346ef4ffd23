"""Hint preprocessors: ComfyUI's Canny plus threshold-based scribble/lineart and a grayscale depth passthrough."""

from __future__ import annotations

from diffusion.controlnet import preprocess

CATEGORY = "image/preprocessors"
IMAGE = ("IMAGE",)


class Canny:
    @classmethod
    def INPUT_TYPES(cls):
        threshold = {"min": 0.01, "max": 0.99, "step": 0.01}
        return {"required": {"image": IMAGE,
                             "low_threshold": ("FLOAT", {"default": 0.4, **threshold}),
                             "high_threshold": ("FLOAT", {"default": 0.8, **threshold})}}

    RETURN_TYPES = IMAGE
    FUNCTION = "detect_edge"
    CATEGORY = CATEGORY

    def detect_edge(self, image, low_threshold, high_threshold):
        return (preprocess.canny(image, low_threshold, high_threshold),)


class ScribbleThreshold:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": IMAGE,
                             "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "invert": ("BOOLEAN", {"default": True, "tooltip": "Dark lines on a light page."})}}

    RETURN_TYPES = IMAGE
    FUNCTION = "threshold_lines"
    CATEGORY = CATEGORY
    DESCRIPTION = "A drawing as white-on-black scribble lines for scribble ControlNets."

    def threshold_lines(self, image, threshold, invert):
        return (preprocess.scribble(image, threshold, invert),)


class LineartThreshold:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": IMAGE,
                             "block_size": ("INT", {"default": 11, "min": 3, "max": 255, "step": 2}),
                             "offset": ("FLOAT", {"default": 0.03, "min": 0.0, "max": 1.0, "step": 0.005})}}

    RETURN_TYPES = IMAGE
    FUNCTION = "threshold_lines"
    CATEGORY = CATEGORY
    DESCRIPTION = "Dark strokes (line art, sketches) as white lines, robust to uneven lighting."

    def threshold_lines(self, image, block_size, offset):
        return (preprocess.lineart(image, block_size, offset),)


class DepthFromImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": IMAGE,
                             "invert": ("BOOLEAN", {"default": False, "tooltip": "For maps where far is white."}),
                             "normalize": ("BOOLEAN", {"default": True})}}

    RETURN_TYPES = IMAGE
    FUNCTION = "depth"
    CATEGORY = CATEGORY
    DESCRIPTION = "Uses an image that already is a depth map (near = white) as a depth hint, in grayscale."

    def depth(self, image, invert, normalize):
        return (preprocess.grayscale_depth(image, invert, normalize),)


NODE_CLASS_MAPPINGS = {
    "Canny": Canny,
    "ScribbleThreshold": ScribbleThreshold,
    "LineartThreshold": LineartThreshold,
    "DepthFromImage": DepthFromImage,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "Canny": "Canny",
    "ScribbleThreshold": "Scribble Lines (threshold)",
    "LineartThreshold": "Line Art (adaptive threshold)",
    "DepthFromImage": "Depth from Grayscale Image",
}
