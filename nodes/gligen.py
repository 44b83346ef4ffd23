"""GLIGEN nodes (ComfyUI's GLIGENLoader and GLIGENTextBoxApply) over diffusion.gligen."""

from __future__ import annotations

from diffusion.gligen import append_box, load_gligen
from nodes import MAX_RESOLUTION
from nodes.loaders import _files, _manager, _resolve


class GLIGENLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"gligen_name": (_files("gligen"),)}}

    RETURN_TYPES = ("GLIGEN",)
    FUNCTION = "load_gligen"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a GLIGEN model (grounded boxes of text through gated self-attention)."

    def load_gligen(self, gligen_name):
        return (load_gligen(_resolve("gligen", gligen_name), _manager()),)


class GLIGENTextBoxApply:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "conditioning_to": ("CONDITIONING",),
                "clip": ("CLIP",),
                "gligen_textbox_model": ("GLIGEN",),
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                "width": ("INT", {"default": 64, "min": 8, "max": MAX_RESOLUTION, "step": 8}),
                "height": ("INT", {"default": 64, "min": 8, "max": MAX_RESOLUTION, "step": 8}),
                "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
                "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning/gligen"
    DESCRIPTION = "Places the text inside a box (pixels) of the image; boxes accumulate."

    def append(self, conditioning_to, clip, gligen_textbox_model, text, width, height, x, y):
        _, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        return (append_box(conditioning_to, gligen_textbox_model, pooled, width, height, x, y),)


NODE_CLASS_MAPPINGS = {"GLIGENLoader": GLIGENLoader, "GLIGENTextBoxApply": GLIGENTextBoxApply}
NODE_DISPLAY_NAME_MAPPINGS = {"GLIGENLoader": "GLIGENLoader", "GLIGENTextBoxApply": "GLIGENTextBoxApply"}
