"""ComfyUI's `comfy_extras.nodes_clip_sdxl` (SDXL text encoding), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"CLIPTextEncodeSDXLRefiner": "CLIPTextEncodeSDXLRefiner", "CLIPTextEncodeSDXL": "CLIPTextEncodeSDXL"})
