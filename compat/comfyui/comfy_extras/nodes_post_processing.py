"""ComfyUI's `comfy_extras.nodes_post_processing` (image filters), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

from diffusion.image_ops import gaussian_kernel

__getattr__ = module_getattr(__name__, {"Blend": "ImageBlend", "Blur": "ImageBlur", "Quantize": "ImageQuantize", "Sharpen": "ImageSharpen", "ImageScaleToTotalPixels": "ImageScaleToTotalPixels"}, {"gaussian_kernel": gaussian_kernel})
