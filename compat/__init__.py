"""Adapters that let node packs written for ComfyUI import the ComfyUI modules they expect.

`compat/comfyui/` is a sys.path entry (not a package) holding thin top-level modules
(`folder_paths`, `comfy.utils`, `comfy.model_management`, ...) that delegate to our engine.
engine.loader adds it to sys.path right before loading custom node packs.
"""
