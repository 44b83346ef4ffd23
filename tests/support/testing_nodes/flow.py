"""Test nodes for lazy inputs, list semantics, execution blockers, combos and validators."""

from __future__ import annotations

from engine.blocker import ExecutionBlocker

from .basic import CALLS


class TestLazySwitch:
    CATEGORY = "testing/flow"
    RETURN_TYPES = ("*",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"switch": ("BOOLEAN", {"default": True}),
                             "on_true": ("*", {"lazy": True}),
                             "on_false": ("*", {"lazy": True})}}

    def check_lazy_status(self, switch, on_true=None, on_false=None):
        CALLS.append(("TestLazySwitch.check", switch))
        if switch and on_true is None:
            return ["on_true"]
        if not switch and on_false is None:
            return ["on_false"]
        return []

    def run(self, switch, on_true=None, on_false=None):
        CALLS.append(("TestLazySwitch", switch))
        return (on_true if switch else on_false,)


class TestLazyBoth:
    """Asks for `first`, then (on its second check) for `second` only if first is positive."""

    CATEGORY = "testing/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": ("INT", {"lazy": True}), "second": ("INT", {"lazy": True})}}

    def check_lazy_status(self, first=None, second=None):
        if first is None:
            return ["first"]
        if first > 0 and second is None:
            return ["second"]
        return []

    def run(self, first, second=None):
        return (first + (second or 0),)


class TestMakeList:
    """Emits [start, start+1, ..., start+count-1] as a list output (OUTPUT_IS_LIST)."""

    CATEGORY = "testing/lists"
    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"start": ("INT", {"default": 0}), "count": ("INT", {"default": 3, "min": 0})}}

    def run(self, start, count):
        CALLS.append(("TestMakeList", count))
        return (list(range(start, start + count)),)


class TestListSum:
    """INPUT_IS_LIST: receives whole lists, called once."""

    CATEGORY = "testing/lists"
    RETURN_TYPES = ("INT",)
    INPUT_IS_LIST = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT",)}}

    def run(self, values):
        CALLS.append(("TestListSum", tuple(values)))
        return (sum(values),)


class TestBlock:
    """Passes `value` through, or returns an ExecutionBlocker (with `message` if non-empty)."""

    CATEGORY = "testing/flow"
    RETURN_TYPES = ("*",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",), "block": ("BOOLEAN", {"default": False}),
                             "message": ("STRING", {"default": ""})}}

    def run(self, value, block, message):
        if block:
            return (ExecutionBlocker(message or None),)
        return (value,)


class TestCombos:
    CATEGORY = "testing/validation"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"legacy": (["red", "green", "blue"], {"default": "red"}),
                             "modern": ("COMBO", {"options": ["small", "large"], "default": "small"})},
                "optional": {"number": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0}),
                             "flag": ("BOOLEAN", {"default": False}),
                             "text": ("STRING", {"default": ""})}}

    def run(self, legacy, modern, number=1.0, flag=False, text=""):
        return (f"{legacy}-{modern}-{number}-{flag}-{text}",)


class TestCustomValidation:
    """VALIDATE_INPUTS rejects odd values and owns `value` (so min/max are not applied to it)."""

    CATEGORY = "testing/validation"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": 0, "max": 10})}}

    @classmethod
    def VALIDATE_INPUTS(cls, value):
        if value is not None and value % 2:
            return f"{value} is odd"
        return True

    def run(self, value):
        return (value,)


class TestInputTypesValidation:
    """Declares `input_types`: the built-in type check is skipped and the node decides."""

    CATEGORY = "testing/validation"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        if input_types.get("value") not in ("INT", "STRING"):
            return f"cannot take {input_types.get('value')}"
        return True

    def run(self, value):
        return (str(value),)


class TestStringOutput:
    CATEGORY = "testing"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "hi", "multiline": True})}}

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {cls.__name__: cls for cls in (
    TestLazySwitch, TestLazyBoth, TestMakeList, TestListSum, TestBlock, TestCombos, TestCustomValidation,
    TestInputTypesValidation, TestStringOutput)}
