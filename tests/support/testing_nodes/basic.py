"""Test nodes: constants, arithmetic, outputs, errors, IS_CHANGED, NOT_IDEMPOTENT, hidden inputs."""

from __future__ import annotations

import math

import torch

from engine.runtime import check_interrupt, report_progress

CALLS: list[tuple[str, object]] = []  # (class name, main argument) of every call; tests clear it


class TestIntConstant:
    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -1000000, "max": 1000000})}}

    def run(self, value):
        CALLS.append(("TestIntConstant", value))
        return (value,)


class TestAdd:
    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("sum",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 0}), "b": ("INT", {"default": 0})}}

    def run(self, a, b):
        CALLS.append(("TestAdd", (a, b)))
        return (a + b,)


class TestNumberOutput:
    """Output node accepting INT or FLOAT (a type union)."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT,FLOAT",)}}

    def run(self, value):
        CALLS.append(("TestNumberOutput", value))
        return {"ui": {"values": [value]}}


class TestOutput:
    """Output node accepting anything; reports what it received in its ui dict."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    def run(self, value):
        CALLS.append(("TestOutput", value))
        shown = value.tolist() if isinstance(value, torch.Tensor) and value.numel() < 64 else value
        if isinstance(shown, torch.Tensor):
            shown = list(shown.shape)
        return {"ui": {"values": [shown]}}


class TestPassthroughOutput:
    """An output node that also passes its value on (ui + result)."""

    CATEGORY = "testing"
    RETURN_TYPES = ("*",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    def run(self, value):
        CALLS.append(("TestPassthroughOutput", value))
        return {"ui": {"values": [value]}, "result": (value,)}


class TestImage:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"width": ("INT", {"default": 8, "min": 1, "max": 64}),
                             "height": ("INT", {"default": 8, "min": 1, "max": 64}),
                             "value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})}}

    def run(self, width, height, value):
        CALLS.append(("TestImage", value))
        return (torch.full((1, height, width, 3), float(value)),)


class TestMutateImage:
    """Breaks the never-mutate rule on purpose (for --debug-mutation-check)."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def run(self, image):
        image.mul_(0.5)
        return (image,)


class TestRaise:
    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "message": ("STRING", {"default": "boom"})}}

    def run(self, value, message):
        CALLS.append(("TestRaise", value))
        raise RuntimeError(message)


class TestIsChanged:
    """IS_CHANGED returns its `token` input: changing the token forces a re-run."""

    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "token": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, value, token):
        if token == "nan":
            return math.nan
        return token

    def run(self, value, token):
        CALLS.append(("TestIsChanged", value))
        return (value,)


class TestIsChangedNoValue:
    """IS_CHANGED keyed on a value that comes from `variant`, ignoring the real input."""

    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    @classmethod
    def IS_CHANGED(cls, value):
        assert value is None  # linked inputs arrive as None
        return "stable"

    def run(self, value):
        CALLS.append(("TestIsChangedNoValue", value))
        return (value,)


class TestNotIdempotent:
    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value):
        CALLS.append(("TestNotIdempotent", value))
        return (value,)


class TestHidden:
    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}}

    def run(self, value, prompt=None, extra_pnginfo=None, unique_id=None):
        return {"ui": {"prompt_nodes": sorted(prompt), "extra_pnginfo": [extra_pnginfo],
                       "unique_id": [unique_id]}}


class TestSlow:
    """Reports progress `steps` times; observes interrupts through the runtime."""

    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0}), "steps": ("INT", {"default": 3, "min": 1})}}

    def run(self, value, steps):
        CALLS.append(("TestSlow", value))
        for step in range(steps):
            report_progress(step + 1, steps, ("JPEG", b"\xff\xd8fake") if step == 0 else None)
        check_interrupt()
        return (value,)


class TestInterruptOnCall:
    """Sets the prompt's interrupt flag from inside (simulates a user pressing cancel mid-node)."""

    CATEGORY = "testing"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value):
        from engine.runtime import current_node

        CALLS.append(("TestInterruptOnCall", value))
        context = current_node()
        assert context is not None and context.interrupt is not None
        context.interrupt.set()
        report_progress(1, 2)  # takes effect at this tick
        CALLS.append(("TestInterruptOnCall.after", value))
        return (value,)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TestIntConstant, TestAdd, TestNumberOutput, TestOutput, TestPassthroughOutput, TestImage,
    TestMutateImage, TestRaise, TestIsChanged, TestIsChangedNoValue, TestNotIdempotent, TestHidden,
    TestSlow, TestInterruptOnCall)}
NODE_DISPLAY_NAME_MAPPINGS = {"TestIntConstant": "Int Constant (test)"}
