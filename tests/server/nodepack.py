"""A tiny node pack for server tests: cheap arithmetic, a slow interruptible node, failures,
an image saver with previews. Registered on a fresh NodeRegistry by `make_registry()`."""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image

from engine import runtime
from engine.registry import NodeRegistry


class Number:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0, "min": -10**9, "max": 10**9})}}

    def run(self, value: int) -> tuple[int]:
        return (value,)


class Add:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    def run(self, a: int, b: int) -> tuple[int]:
        return (a + b,)


class Sleep:
    """Sleeps in small steps, reporting progress (and so observing interrupts) each step."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0}),
                             "seconds": ("FLOAT", {"default": 0.1, "min": 0, "max": 600})}}

    def run(self, value: int, seconds: float) -> tuple[int]:
        steps = max(1, int(seconds / 0.02))
        for step in range(steps):
            time.sleep(seconds / steps)
            runtime.report_progress(step + 1, steps)
        return (value,)


class Show:
    """Output node: returns its number as UI text."""

    CATEGORY = "test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value: int) -> dict[str, Any]:
        return {"ui": {"text": [str(value)]}}


class Fail:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"kind": (["value", "memory"],)}}

    def run(self, kind: str) -> tuple[int]:
        if kind == "memory":
            raise MemoryError("simulated allocation failure")
        raise ValueError("this node always fails")


class SaveSquare:
    """Output node: writes a small PNG to output/ and sends a JPEG preview first."""

    CATEGORY = "test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0}),
                             "filename_prefix": ("STRING", {"default": "square"})}}

    def run(self, value: int, filename_prefix: str) -> dict[str, Any]:
        image = Image.new("RGB", (16, 16), (value % 256, 40, 90))
        preview = io.BytesIO()
        image.save(preview, format="JPEG")
        runtime.report_progress(1, 1, ("JPEG", preview.getvalue()))
        out_dir = runtime.services().paths.output_directory
        name = f"{filename_prefix}_{value:05}_.png"
        image.save(out_dir / name, format="PNG")
        return {"ui": {"images": [{"filename": name, "subfolder": "", "type": "output"}]}}


class Float:
    """Unbounded FLOATs multiplied and shown: 1e300 × 1e300 is infinity in the node's output
    (validation refuses non-finite inputs, but a node can still compute one)."""

    CATEGORY = "test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"x": ("FLOAT", {})}, "optional": {"scale": ("FLOAT", {"default": 1.0})}}

    def run(self, x: float, scale: float = 1.0) -> dict[str, Any]:
        return {"ui": {"value": [float(x) * float(scale)]}}


NODE_CLASS_MAPPINGS = {"TestNumber": Number, "TestAdd": Add, "TestSleep": Sleep,
                       "TestShow": Show, "TestFail": Fail, "TestSaveSquare": SaveSquare,
                       "TestShowFloat": Float}


def make_registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register_mappings(NODE_CLASS_MAPPINGS, {}, "tests.server.nodepack")
    return registry
