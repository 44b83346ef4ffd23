"""CLIP vision nodes: loaders, image encoding, unCLIP / SDXL revision conditioning (ComfyUI names)."""

from __future__ import annotations

from diffusion.checkpoint import load_checkpoint
from diffusion.clip_vision.loader import load_clip_vision
from diffusion.clip_vision.unclip import add_unclip_conditioning
from diffusion.style_model import apply_style, load_style_model
from nodes.loaders import _files, _manager, _resolve


class CLIPVisionLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": (_files("clip_vision"),)}}

    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load_clip"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a CLIP vision model (ViT-L/14, ViT-H/14, ViT-bigG; HF or OpenCLIP layout)."

    def load_clip(self, clip_name):
        return (load_clip_vision(_resolve("clip_vision", clip_name), _manager()),)


class CLIPVisionEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_vision": ("CLIP_VISION",), "image": ("IMAGE",), "crop": (["center", "none"],)}}

    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = "Encodes images with a CLIP vision model (center crop, or squashed to a square with 'none')."

    def encode(self, clip_vision, image, crop):
        return (clip_vision.encode_image(image, crop=crop == "center"),)


class unCLIPCheckpointLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (_files("checkpoints"),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE", "CLIP_VISION")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a stable unCLIP checkpoint (SD2.1-unclip) with the CLIP vision model it carries."

    def load_checkpoint(self, ckpt_name):
        path = _resolve("checkpoints", ckpt_name)
        loaded = load_checkpoint(path, _manager())
        return (loaded.model, loaded.clip, loaded.vae, load_clip_vision(path, _manager()))


class unCLIPConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "clip_vision_output": ("CLIP_VISION_OUTPUT",),
                "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
                "noise_augmentation": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_adm"
    CATEGORY = "conditioning"
    DESCRIPTION = "Adds an image embedding: stable unCLIP's y, or SDXL's pooled embedding (revision)."

    def apply_adm(self, conditioning, clip_vision_output, strength, noise_augmentation):
        return (add_unclip_conditioning(conditioning, clip_vision_output, strength, noise_augmentation),)


class StyleModelLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"style_model_name": (_files("style_models"),)}}

    RETURN_TYPES = ("STYLE_MODEL",)
    FUNCTION = "load_style_model"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a T2I-Adapter style model."

    def load_style_model(self, style_model_name):
        return (load_style_model(_resolve("style_models", style_model_name), _manager()),)


class StyleModelApply:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "style_model": ("STYLE_MODEL",),
                "clip_vision_output": ("CLIP_VISION_OUTPUT",),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.001}),
                "strength_type": (["multiply", "attn_bias"],),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_stylemodel"
    CATEGORY = "conditioning/style_model"
    DESCRIPTION = "Appends style tokens computed from a CLIP vision output to the prompt's tokens."

    def apply_stylemodel(self, conditioning, style_model, clip_vision_output, strength, strength_type):
        return (apply_style(conditioning, style_model.get_cond(clip_vision_output), strength, strength_type),)


NODE_CLASS_MAPPINGS = {
    "CLIPVisionLoader": CLIPVisionLoader,
    "CLIPVisionEncode": CLIPVisionEncode,
    "unCLIPCheckpointLoader": unCLIPCheckpointLoader,
    "unCLIPConditioning": unCLIPConditioning,
    "StyleModelLoader": StyleModelLoader,
    "StyleModelApply": StyleModelApply,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPVisionLoader": "Load CLIP Vision",
    "CLIPVisionEncode": "CLIP Vision Encode",
    "unCLIPCheckpointLoader": "unCLIPCheckpointLoader",
    "unCLIPConditioning": "unCLIPConditioning",
    "StyleModelLoader": "Load Style Model",
    "StyleModelApply": "Apply Style Model",
}
