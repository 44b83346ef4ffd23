"""ComfyUI's `comfy_extras.nodes_upscale_model` (upscale models), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"UpscaleModelLoader": "UpscaleModelLoader", "ImageUpscaleWithModel": "ImageUpscaleWithModel"})
