"""ComfyUI's `comfy_extras.nodes_hypernetwork` (hypernetworks), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"HypernetworkLoader": "HypernetworkLoader"})
