"""Model merging nodes (ComfyUI's names, inputs and categories): merges are patches on a clone."""

from __future__ import annotations

from diffusion.merge.merging import merge_add, merge_blocks, merge_simple, merge_subtract

CATEGORY = "advanced/model_merging"
_RATIO = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})
_MULTIPLIER = ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})


class ModelMergeSimple:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",), "ratio": _RATIO}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY
    DESCRIPTION = "ratio · model1 + (1 − ratio) · model2, weight by weight (ratio 1 keeps model1)."

    def merge(self, model1, model2, ratio):
        return (merge_simple(model1, model2, ratio),)


class ModelMergeSubtract:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",), "multiplier": _MULTIPLIER}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY
    DESCRIPTION = "multiplier · (model1 − model2): what a fine-tune changed, to add to another model."

    def merge(self, model1, model2, multiplier):
        return (merge_subtract(model1, model2, multiplier),)


class ModelMergeAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",)}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY
    DESCRIPTION = "model1 + model2, weight by weight."

    def merge(self, model1, model2):
        return (merge_add(model1, model2),)


class CLIPMergeSimple:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip1": ("CLIP",), "clip2": ("CLIP",), "ratio": _RATIO}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY

    def merge(self, clip1, clip2, ratio):
        return (merge_simple(clip1, clip2, ratio, filter_prefix=None),)


class CLIPMergeSubtract:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip1": ("CLIP",), "clip2": ("CLIP",), "multiplier": _MULTIPLIER}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY

    def merge(self, clip1, clip2, multiplier):
        return (merge_subtract(clip1, clip2, multiplier, filter_prefix=None),)


class CLIPMergeAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip1": ("CLIP",), "clip2": ("CLIP",)}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY

    def merge(self, clip1, clip2):
        return (merge_add(clip1, clip2, filter_prefix=None),)


class ModelMergeBlocks:
    """Per-block ratios: each input names a UNet key prefix; the longest matching prefix wins and
    weights matching none take the first block's ratio (ComfyUI's rule)."""

    @classmethod
    def block_inputs(cls) -> dict[str, tuple]:
        return {"input": _RATIO, "middle": _RATIO, "out": _RATIO}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model1": ("MODEL",), "model2": ("MODEL",), **cls.block_inputs()}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "merge"
    CATEGORY = CATEGORY

    def merge(self, model1, model2, **ratios):
        names = list(self.block_inputs())
        unknown = sorted(set(ratios) - set(names))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no block input {unknown}")
        return (merge_blocks(model1, model2, ratios, default=ratios[names[0]]),)


def _numbered(template: str, count: int) -> list[str]:
    return [template.format(i) for i in range(count)]


class ModelMergeSD1(ModelMergeBlocks):
    """SD1/SD2 UNet blocks (ComfyUI's names: prefixes end with a dot)."""

    CATEGORY = "advanced/model_merging/model_specific"

    @classmethod
    def block_inputs(cls) -> dict[str, tuple]:
        names = ["time_embed.", "label_emb."]
        names += _numbered("input_blocks.{}.", 12) + _numbered("middle_block.{}.", 3)
        names += _numbered("output_blocks.{}.", 12) + ["out."]
        return dict.fromkeys(names, _RATIO)


class ModelMergeSD2(ModelMergeSD1):
    """SD2 has SD1's block layout (ComfyUI registers the SD1 node under this name)."""


class ModelMergeSDXL(ModelMergeBlocks):
    """SDXL UNet blocks (ComfyUI's names have no trailing dot here, so ``input_blocks.1`` also
    matches ``input_blocks.1x``; SDXL has only 9 input/output blocks, so nothing is mismatched)."""

    CATEGORY = "advanced/model_merging/model_specific"

    @classmethod
    def block_inputs(cls) -> dict[str, tuple]:
        names = ["time_embed.", "label_emb."]
        names += _numbered("input_blocks.{}", 9) + _numbered("middle_block.{}", 3)
        names += _numbered("output_blocks.{}", 9) + ["out."]
        return dict.fromkeys(names, _RATIO)


NODE_CLASS_MAPPINGS = {
    "ModelMergeSimple": ModelMergeSimple,
    "ModelMergeBlocks": ModelMergeBlocks,
    "ModelMergeSubtract": ModelMergeSubtract,
    "ModelMergeAdd": ModelMergeAdd,
    "CLIPMergeSimple": CLIPMergeSimple,
    "CLIPMergeSubtract": CLIPMergeSubtract,
    "CLIPMergeAdd": CLIPMergeAdd,
    "ModelMergeSD1": ModelMergeSD1,
    "ModelMergeSD2": ModelMergeSD2,
    "ModelMergeSDXL": ModelMergeSDXL,
}
