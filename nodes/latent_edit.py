"""Latent editing nodes: compositing, blending, transforms, arithmetic, batches and latent
operations (ComfyUI's nodes.py, nodes_latent.py, nodes_mask.py and nodes_rebatch.py interfaces);
the work is in diffusion.latent_edit."""

from __future__ import annotations

import torch

from diffusion import latent_edit
from nodes import MAX_RESOLUTION

_PIXEL_POSITION = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
_ROTATIONS = ["none", "90 degrees", "180 degrees", "270 degrees"]
_FLIPS = ["x-axis: vertically", "y-axis: horizontally"]


class LatentComposite:
    CATEGORY = "latent"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "composite"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples_to": ("LATENT",), "samples_from": ("LATENT",),
                             "x": ("INT", _PIXEL_POSITION), "y": ("INT", _PIXEL_POSITION),
                             "feather": ("INT", _PIXEL_POSITION)}}

    def composite(self, samples_to, samples_from, x, y, feather=0):
        return (latent_edit.composite_feathered(samples_to, samples_from, x, y, feather),)


class LatentCompositeMasked:
    CATEGORY = "latent"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "composite"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"destination": ("LATENT",), "source": ("LATENT",),
                             "x": ("INT", _PIXEL_POSITION), "y": ("INT", _PIXEL_POSITION),
                             "resize_source": ("BOOLEAN", {"default": False})},
                "optional": {"mask": ("MASK",)}}

    def composite(self, destination, source, x, y, resize_source, mask=None):
        return (latent_edit.composite_masked(destination, source, x, y, mask, resize_source),)


class LatentBlend:
    CATEGORY = "_for_testing"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "blend"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples1": ("LATENT",), "samples2": ("LATENT",),
                             "blend_factor": ("FLOAT", {"default": 0.5, "min": 0, "max": 1, "step": 0.01})}}

    def blend(self, samples1, samples2, blend_factor):
        return (latent_edit.blend(samples1, samples2, blend_factor),)


class LatentRotate:
    CATEGORY = "latent/transform"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "rotate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "rotation": (_ROTATIONS,)}}

    def rotate(self, samples, rotation):
        # clockwise quarter turns, as ComfyUI (rot90 from the width axis towards the height axis)
        rotated = torch.rot90(samples["samples"], k=_ROTATIONS.index(rotation), dims=[3, 2])
        return ({**samples, "samples": rotated},)


class LatentFlip:
    CATEGORY = "latent/transform"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "flip"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "flip_method": (_FLIPS,)}}

    def flip(self, samples, flip_method):
        flipped = torch.flip(samples["samples"], dims=[2 if flip_method.startswith("x") else 3])
        return ({**samples, "samples": flipped},)


class LatentCrop:
    CATEGORY = "latent/transform"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "crop"

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 512, "min": 64, "max": MAX_RESOLUTION, "step": 8}
        return {"required": {"samples": ("LATENT",), "width": ("INT", size), "height": ("INT", size),
                             "x": ("INT", _PIXEL_POSITION), "y": ("INT", _PIXEL_POSITION)}}

    def crop(self, samples, width, height, x, y):
        return (latent_edit.crop(samples, width, height, x, y),)


class _TwoLatents:
    CATEGORY = "latent/advanced"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples1": ("LATENT",), "samples2": ("LATENT",)}}


class LatentAdd(_TwoLatents):
    def op(self, samples1, samples2):
        return (latent_edit.add(samples1, samples2),)


class LatentSubtract(_TwoLatents):
    def op(self, samples1, samples2):
        return (latent_edit.subtract(samples1, samples2),)


class LatentMultiply:
    CATEGORY = "latent/advanced"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",),
                             "multiplier": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})}}

    def op(self, samples, multiplier):
        return (latent_edit.multiply(samples, multiplier),)


class LatentInterpolate:
    CATEGORY = "latent/advanced"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples1": ("LATENT",), "samples2": ("LATENT",),
                             "ratio": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})}}

    def op(self, samples1, samples2, ratio):
        return (latent_edit.interpolate(samples1, samples2, ratio),)


class LatentConcat:
    CATEGORY = "latent/advanced"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples1": ("LATENT",), "samples2": ("LATENT",),
                             "dim": (["x", "-x", "y", "-y", "t", "-t"],)}}

    def op(self, samples1, samples2, dim):
        return (latent_edit.concat(samples1, samples2, dim),)


class LatentCut:
    CATEGORY = "latent/advanced"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "dim": (["x", "y", "t"],),
                             "index": ("INT", {"default": 0, "min": -MAX_RESOLUTION, "max": MAX_RESOLUTION,
                                               "step": 1}),
                             "amount": ("INT", {"default": 1, "min": 1, "max": MAX_RESOLUTION, "step": 1})}}

    def op(self, samples, dim, index, amount):
        return (latent_edit.cut(samples, dim, index, amount),)


class LatentBatch(_TwoLatents):
    CATEGORY = "latent/batch"

    def op(self, samples1, samples2):
        return (latent_edit.batch(samples1, samples2),)


class LatentBatchSeedBehavior:
    CATEGORY = "latent/advanced"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",),
                             "seed_behavior": (["random", "fixed"], {"default": "fixed"})}}

    def op(self, samples, seed_behavior):
        return (latent_edit.seed_behavior(samples, seed_behavior),)


class RebatchLatents:
    CATEGORY = "latent/batch"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "rebatch"
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latents": ("LATENT",), "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def rebatch(self, latents, batch_size):
        return (latent_edit.rebatch(latents, batch_size[0]),)


class LatentApplyOperation:
    CATEGORY = "latent/advanced/operations"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "op"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "operation": ("LATENT_OPERATION",)}}

    def op(self, samples, operation):
        return (latent_edit.apply_operation(samples, operation),)


class LatentApplyOperationCFG:
    CATEGORY = "latent/advanced/operations"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "operation": ("LATENT_OPERATION",)}}

    def patch(self, model, operation):
        patched = model.clone()
        patched.set_model_sampler_pre_cfg_function(latent_edit.pre_cfg_hook(operation))
        return (patched,)


class LatentOperationTonemapReinhard:
    CATEGORY = "latent/advanced/operations"
    RETURN_TYPES = ("LATENT_OPERATION",)
    FUNCTION = "op"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"multiplier": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01})}}

    def op(self, multiplier):
        return (latent_edit.tonemap_reinhard(multiplier),)


class LatentOperationSharpen:
    CATEGORY = "latent/advanced/operations"
    RETURN_TYPES = ("LATENT_OPERATION",)
    FUNCTION = "op"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sharpen_radius": ("INT", {"default": 9, "min": 1, "max": 31, "step": 1}),
                             "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1}),
                             "alpha": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 5.0, "step": 0.01})}}

    def op(self, sharpen_radius, sigma, alpha):
        return (latent_edit.sharpen(sharpen_radius, sigma, alpha),)


NODE_CLASS_MAPPINGS = {
    "LatentComposite": LatentComposite,
    "LatentCompositeMasked": LatentCompositeMasked,
    "LatentBlend": LatentBlend,
    "LatentRotate": LatentRotate,
    "LatentFlip": LatentFlip,
    "LatentCrop": LatentCrop,
    "LatentAdd": LatentAdd,
    "LatentSubtract": LatentSubtract,
    "LatentMultiply": LatentMultiply,
    "LatentInterpolate": LatentInterpolate,
    "LatentConcat": LatentConcat,
    "LatentCut": LatentCut,
    "LatentBatch": LatentBatch,
    "LatentBatchSeedBehavior": LatentBatchSeedBehavior,
    "RebatchLatents": RebatchLatents,
    "LatentApplyOperation": LatentApplyOperation,
    "LatentApplyOperationCFG": LatentApplyOperationCFG,
    "LatentOperationTonemapReinhard": LatentOperationTonemapReinhard,
    "LatentOperationSharpen": LatentOperationSharpen,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LatentComposite": "Latent Composite",
    "LatentBlend": "Latent Blend",
    "LatentRotate": "Rotate Latent",
    "LatentFlip": "Flip Latent",
    "LatentCrop": "Crop Latent",
    "RebatchLatents": "Rebatch Latents",
}
