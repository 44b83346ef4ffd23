"""ComfyUI's `comfy.comfy_types`: the IO type-name enum and typing helpers packs annotate with."""

from .node_typing import IO, ComfyNodeABC, InputTypeDict

__all__ = ["IO", "ComfyNodeABC", "InputTypeDict"]
