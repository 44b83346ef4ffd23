"""Conditioning nodes: combine, average, concatenate, restrict to areas/masks/timestep ranges, zero out."""

from __future__ import annotations

from diffusion import conditioning as cond_ops

from nodes import MAX_RESOLUTION
COND = ("CONDITIONING",)


class ConditioningCombine:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_1": COND, "conditioning_2": COND}}

    RETURN_TYPES = COND
    FUNCTION = "combine"
    CATEGORY = "conditioning"

    def combine(self, conditioning_1, conditioning_2):
        return (cond_ops.combine(conditioning_1, conditioning_2),)


class ConditioningAverage:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning_to": COND,
                "conditioning_from": COND,
                "conditioning_to_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = COND
    FUNCTION = "addWeighted"
    CATEGORY = "conditioning"

    def addWeighted(self, conditioning_to, conditioning_from, conditioning_to_strength):  # noqa: N802 - ComfyUI name
        return (cond_ops.average(conditioning_to, conditioning_from, conditioning_to_strength),)


class ConditioningConcat:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_to": COND, "conditioning_from": COND}}

    RETURN_TYPES = COND
    FUNCTION = "concat"
    CATEGORY = "conditioning"

    def concat(self, conditioning_to, conditioning_from):
        return (cond_ops.concat(conditioning_to, conditioning_from),)


class ConditioningSetArea:
    @classmethod
    def INPUT_TYPES(cls):
        pixels = {"max": MAX_RESOLUTION, "step": 8}
        return {
            "required": {
                "conditioning": COND,
                "width": ("INT", {"default": 64, "min": 64, **pixels}),
                "height": ("INT", {"default": 64, "min": 64, **pixels}),
                "x": ("INT", {"default": 0, "min": 0, **pixels}),
                "y": ("INT", {"default": 0, "min": 0, **pixels}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = COND
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, x, y, strength):  # noqa: A002 - ComfyUI name
        return (cond_ops.set_area(conditioning, width, height, x, y, strength),)


class ConditioningSetAreaPercentage:
    @classmethod
    def INPUT_TYPES(cls):
        fraction = {"min": 0.0, "max": 1.0, "step": 0.01}
        return {
            "required": {
                "conditioning": COND,
                "width": ("FLOAT", {"default": 1.0, **fraction}),
                "height": ("FLOAT", {"default": 1.0, **fraction}),
                "x": ("FLOAT", {"default": 0.0, **fraction}),
                "y": ("FLOAT", {"default": 0.0, **fraction}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = COND
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, x, y, strength):
        return (cond_ops.set_area_percentage(conditioning, width, height, x, y, strength),)


class ConditioningSetAreaStrength:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning": COND,
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = COND
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, strength):
        return (cond_ops.with_options(conditioning, strength=strength),)


class ConditioningSetMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning": COND,
                "mask": ("MASK",),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
                "set_cond_area": (["default", "mask bounds"],),
            }
        }

    RETURN_TYPES = COND
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, mask, set_cond_area, strength):
        bounds = set_cond_area != "default"
        return (cond_ops.set_mask(conditioning, mask, strength, bounds),)


class ConditioningZeroOut:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": COND}}

    RETURN_TYPES = COND
    FUNCTION = "zero_out"
    CATEGORY = "advanced/conditioning"

    def zero_out(self, conditioning):
        return (cond_ops.zero_out(conditioning),)


class ConditioningSetTimestepRange:
    @classmethod
    def INPUT_TYPES(cls):
        fraction = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {
            "required": {
                "conditioning": COND,
                "start": ("FLOAT", {"default": 0.0, **fraction}),
                "end": ("FLOAT", {"default": 1.0, **fraction}),
            }
        }

    RETURN_TYPES = COND
    FUNCTION = "set_range"
    CATEGORY = "advanced/conditioning"

    def set_range(self, conditioning, start, end):
        return (cond_ops.set_timestep_range(conditioning, start, end),)


NODE_CLASS_MAPPINGS = {
    "ConditioningCombine": ConditioningCombine,
    "ConditioningAverage": ConditioningAverage,
    "ConditioningConcat": ConditioningConcat,
    "ConditioningSetArea": ConditioningSetArea,
    "ConditioningSetAreaPercentage": ConditioningSetAreaPercentage,
    "ConditioningSetAreaStrength": ConditioningSetAreaStrength,
    "ConditioningSetMask": ConditioningSetMask,
    "ConditioningZeroOut": ConditioningZeroOut,
    "ConditioningSetTimestepRange": ConditioningSetTimestepRange,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ConditioningCombine": "Conditioning (Combine)",
    "ConditioningAverage": "Conditioning (Average)",
    "ConditioningConcat": "Conditioning (Concat)",
    "ConditioningSetArea": "Conditioning (Set Area)",
    "ConditioningSetAreaPercentage": "Conditioning (Set Area with Percentage)",
    "ConditioningSetAreaStrength": "ConditioningSetAreaStrength",
    "ConditioningSetMask": "Conditioning (Set Mask)",
    "ConditioningZeroOut": "ConditioningZeroOut",
    "ConditioningSetTimestepRange": "ConditioningSetTimestepRange",
}
