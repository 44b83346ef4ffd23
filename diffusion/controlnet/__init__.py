"""ControlNets and T2I-Adapters: networks, file formats, and the CONTROL_NET values nodes pass on."""

from diffusion.controlnet.control import ControlBase, ControlFamilyError, ControlNet
from diffusion.controlnet.formats import ControlNetError
from diffusion.controlnet.loader import load_controlnet, load_controlnet_state_dict

__all__ = [
    "ControlBase",
    "ControlFamilyError",
    "ControlNet",
    "ControlNetError",
    "load_controlnet",
    "load_controlnet_state_dict",
]
