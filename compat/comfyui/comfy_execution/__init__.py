"""ComfyUI's `comfy_execution` package for node packs (only `graph_utils.ExecutionBlocker`)."""
