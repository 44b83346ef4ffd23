"""ComfyUI's `comfy.comfy_types.node_typing`: type names as a string enum (`IO.IMAGE == "IMAGE"`),
so packs writing `(IO.IMAGE, {})` in INPUT_TYPES declare the same sockets as `("IMAGE", {})`."""

from __future__ import annotations

import enum
from abc import ABC
from typing import Any


class IO(str, enum.Enum):
    """Socket type names. `ANY` ("*") matches every type; `NUMBER` is "FLOAT,INT" (either)."""

    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __str__(self) -> str:
        return self.value


InputTypeDict = dict[str, Any]


class ComfyNodeABC(ABC):
    """Base class packs may derive V1 nodes from; it adds nothing to the V1 ABI."""
