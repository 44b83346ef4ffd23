"""ComfyUI's `comfy_extras.nodes_mask` (masks), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

from diffusion.image_ops import composite

__getattr__ = module_getattr(__name__, {"LatentCompositeMasked": "LatentCompositeMasked", "ImageCompositeMasked": "ImageCompositeMasked", "MaskToImage": "MaskToImage", "ImageToMask": "ImageToMask", "ImageColorToMask": "ImageColorToMask", "SolidMask": "SolidMask", "InvertMask": "InvertMask", "CropMask": "CropMask", "MaskComposite": "MaskComposite", "FeatherMask": "FeatherMask", "GrowMask": "GrowMask", "ThresholdMask": "ThresholdMask", "MaskPreview": "MaskPreview"}, {"composite": composite})
