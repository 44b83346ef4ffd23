"""ComfyUI's `comfy` package for node packs: only the submodules Latentgraph adapts are present."""
