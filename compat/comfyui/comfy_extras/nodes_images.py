"""ComfyUI's `comfy_extras.nodes_images` (image batches and files), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"ImageCrop": "ImageCrop", "RepeatImageBatch": "RepeatImageBatch", "ImageFromBatch": "ImageFromBatch", "ImageAddNoise": "ImageAddNoise", "SaveAnimatedWEBP": "SaveAnimatedWEBP", "SaveAnimatedPNG": "SaveAnimatedPNG", "ImageStitch": "ImageStitch", "ResizeAndPadImage": "ResizeAndPadImage", "GetImageSize": "GetImageSize", "ImageRotate": "ImageRotate", "ImageFlip": "ImageFlip", "ImageScaleToMaxDimension": "ImageScaleToMaxDimension"})
