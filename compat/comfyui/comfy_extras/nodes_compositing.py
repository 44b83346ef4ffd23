"""ComfyUI's `comfy_extras.nodes_compositing` (alpha compositing), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"PorterDuffImageComposite": "PorterDuffImageComposite", "SplitImageWithAlpha": "SplitImageWithAlpha", "JoinImageWithAlpha": "JoinImageWithAlpha"})
