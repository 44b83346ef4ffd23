"""Primitive value nodes (ComfyUI's names) and a Seed node: widgets that feed other nodes."""

from __future__ import annotations

import sys

MAX_SEED = 0xFFFFFFFFFFFFFFFF


class PrimitiveInt:
    CATEGORY = "utils/primitive"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -sys.maxsize, "max": sys.maxsize,
                                               "control_after_generate": True})}}

    def run(self, value: int):
        return (value,)


class PrimitiveFloat:
    CATEGORY = "utils/primitive"
    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.0, "min": -sys.maxsize, "max": sys.maxsize,
                                                 "step": 0.01})}}

    def run(self, value: float):
        return (value,)


class PrimitiveString:
    CATEGORY = "utils/primitive"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": ""})}}

    def run(self, value: str):
        return (value,)


class PrimitiveStringMultiline(PrimitiveString):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING", {"default": "", "multiline": True})}}


class PrimitiveBoolean:
    CATEGORY = "utils/primitive"
    RETURN_TYPES = ("BOOLEAN",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("BOOLEAN", {"default": False})}}

    def run(self, value: bool):
        return (value,)


class Seed:
    """One seed shared by several samplers; the editor's control widget randomizes it per run."""

    CATEGORY = "utils/primitive"
    DESCRIPTION = "A seed value (0 to 2^64-1) to connect to several samplers."
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("seed",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED,
                                              "control_after_generate": True})}}

    def run(self, seed: int):
        return (seed,)


NODE_CLASS_MAPPINGS = {
    "PrimitiveInt": PrimitiveInt,
    "PrimitiveFloat": PrimitiveFloat,
    "PrimitiveString": PrimitiveString,
    "PrimitiveStringMultiline": PrimitiveStringMultiline,
    "PrimitiveBoolean": PrimitiveBoolean,
    "PrimitiveSeed": Seed,
}
# Renamed from "Seed", a name packs use (WAS node suite); workflows saved with it still load.
NODE_ALIASES = {"Seed": "PrimitiveSeed"}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PrimitiveInt": "Int",
    "PrimitiveFloat": "Float",
    "PrimitiveString": "String",
    "PrimitiveStringMultiline": "String (Multiline)",
    "PrimitiveBoolean": "Boolean",
    "PrimitiveSeed": "Seed",
}
