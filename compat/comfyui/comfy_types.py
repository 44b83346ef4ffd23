"""Older ComfyUI's top-level `comfy_types`: the same names as comfy.comfy_types."""

from comfy.comfy_types import IO, ComfyNodeABC, InputTypeDict  # noqa: F401
