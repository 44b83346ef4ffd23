"""ComfyUI's `comfy.clip_vision` for node packs (IP-Adapter style): load a CLIP vision file, preprocess
images, and the output record. The values are Latentgraph's (diffusion.clip_vision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusion.clip_vision.encoder import ClipVisionModel, clip_preprocess
from diffusion.clip_vision.encoder import ClipVisionOutput as Output
from diffusion.clip_vision.loader import ClipVisionError, load_clip_vision, load_clip_vision_state_dict
from engine import runtime

__all__ = ["ClipVisionModel", "Output", "clip_preprocess", "load", "load_clipvision_from_sd"]


def _manager() -> Any:
    manager = runtime.services().model_manager
    if manager is None:
        raise RuntimeError("no model manager configured: start the runtime through app.bootstrap")
    return manager


def load(ckpt_path: str | Path) -> ClipVisionModel | None:
    """A CLIP vision model from a file (HF or OpenCLIP layout); None when the file holds none."""
    try:
        return load_clip_vision(ckpt_path, _manager())
    except ClipVisionError:
        return None


def load_clipvision_from_sd(sd: dict, prefix: str = "", convert_keys: bool = False) -> ClipVisionModel | None:
    """A CLIP vision model from a state dict (the tower is found by its keys; `prefix` and
    `convert_keys` are accepted for ComfyUI's signature)."""
    try:
        return load_clip_vision_state_dict(sd, _manager())
    except ClipVisionError:
        return None
