"""ControlNet / T2I-Adapter nodes: loaders, apply nodes (ComfyUI names and inputs) and ControlHint."""

from __future__ import annotations

from diffusion.controlnet import load_controlnet
from diffusion.controlnet.apply import apply_control
from nodes.loaders import _files, _manager, _resolve

COND = ("CONDITIONING",)
STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})
START = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001})
END = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001})
# ComfyUI's union ControlNet control types (comfy/cldm/control_types.py).
UNION_CONTROLNET_TYPES = {
    "openpose": 0,
    "depth": 1,
    "hed/pidi/scribble/ted": 2,
    "canny/lineart/anime_lineart/mlsd": 3,
    "normal": 4,
    "segment": 5,
    "tile": 6,
    "repaint": 7,
}


class ControlNetLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"control_net_name": (_files("controlnet"),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a ControlNet or T2I-Adapter (original, diffusers or SDXL layouts; detected from the file)."

    def load_controlnet(self, control_net_name):
        return (load_controlnet(_resolve("controlnet", control_net_name), _manager()),)


class DiffControlNetLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "control_net_name": (_files("controlnet"),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"
    DESCRIPTION = "Loads a ControlNet; a difference ControlNet is added to this model's UNet weights."

    def load_controlnet(self, model, control_net_name):
        return (load_controlnet(_resolve("controlnet", control_net_name), _manager(), model=model),)


class ControlNetApply:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": COND, "control_net": ("CONTROL_NET",), "image": ("IMAGE",),
                             "strength": STRENGTH}}

    RETURN_TYPES = COND
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"
    DEPRECATED = True

    def apply_controlnet(self, conditioning, control_net, image, strength):
        return tuple(apply_control([conditioning], control_net, image, strength, apply_to_uncond=True))


class ControlNetApplyAdvanced:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": COND, "negative": COND, "control_net": ("CONTROL_NET",),
                             "image": ("IMAGE",), "strength": STRENGTH, "start_percent": START,
                             "end_percent": END},
                "optional": {"vae": ("VAE",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"

    def apply_controlnet(self, positive, negative, control_net, image, strength, start_percent, end_percent,
                         vae=None):
        return tuple(apply_control([positive, negative], control_net, image, strength, start_percent, end_percent,
                                   vae=vae))


class ControlHint(ControlNetApplyAdvanced):
    """The design card's name for a hint image steering generation: Apply ControlNet's behaviour."""

    @classmethod
    def INPUT_TYPES(cls):
        inputs = super().INPUT_TYPES()
        return {"required": inputs["required"]}

    DESCRIPTION = "Steers both conditionings with a hint image (edges, depth, pose…) through a ControlNet."


class SetUnionControlNetType:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"control_net": ("CONTROL_NET",), "type": (["auto"] + list(UNION_CONTROLNET_TYPES),)}}

    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "set_controlnet_type"
    CATEGORY = "conditioning/controlnet"

    def set_controlnet_type(self, control_net, type):
        control_net = control_net.copy()
        number = UNION_CONTROLNET_TYPES.get(type, -1)
        control_net.set_extra_arg("control_type", [number] if number >= 0 else [])
        return (control_net,)


NODE_CLASS_MAPPINGS = {
    "ControlNetLoader": ControlNetLoader,
    "DiffControlNetLoader": DiffControlNetLoader,
    "ControlNetApply": ControlNetApply,
    "ControlNetApplyAdvanced": ControlNetApplyAdvanced,
    "ControlHint": ControlHint,
    "SetUnionControlNetType": SetUnionControlNetType,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ControlNetLoader": "Load ControlNet Model",
    "DiffControlNetLoader": "Load ControlNet Model (diff)",
    "ControlNetApply": "Apply ControlNet (OLD)",
    "ControlNetApplyAdvanced": "Apply ControlNet",
    "ControlHint": "Control Hint",
    "SetUnionControlNetType": "SetUnionControlNetType",
}
