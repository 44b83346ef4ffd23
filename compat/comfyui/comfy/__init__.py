"""ComfyUI's `comfy` package for node packs: only the submodules Latentgraph adapts are present.

They are imported here because in ComfyUI they are always loaded before packs, and packs rely
on it (`import comfy` then `comfy.model_management.get_torch_device()`). Importing them has no
side effects.
"""

from . import cli_args, clip_vision, model_management, sample, samplers, sd, utils

__all__ = ["cli_args", "clip_vision", "model_management", "sample", "samplers", "sd", "utils"]
