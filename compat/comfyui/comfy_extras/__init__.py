"""ComfyUI's `comfy_extras` modules for node packs: ComfyUI's core extra nodes are Latentgraph's
built-in nodes; each module answers the Python names ComfyUI defines there with our classes
(compat.builtin_nodes.module_getattr). Names we have no node for raise AttributeError."""
