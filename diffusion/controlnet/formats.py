"""Which kind of control file a state dict is, and renaming its tensors to our LDM module names.

Detection is by keys, in ComfyUI's order (shared/reference/comfyui-interfaces.md §7.7): Control-LoRA
and Union markers, diffusers ``ControlNetModel`` names, the other families' ControlNets, the
original ``control_model.*`` layout (bare keys too), and finally T2I-Adapters.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

import torch

from diffusion.checkpoint.arch import UPCAST_ATTENTION, Family, _depth_output
from diffusion.checkpoint.detect import detect_family, head_config, infer_unet_config
from diffusion.checkpoint.diffusers_unet import diffusers_unet_to_ldm
from diffusion.checkpoint.errors import CheckpointError
from diffusion.controlnet.network import ControlNetConfig

Kind = Literal["controlnet", "controlnet-diffusers", "control-lora", "t2i-adapter"]

CONTROL_PREFIX = "control_model."
LDM_PROBE = "zero_convs.0.0.weight"
DIFFUSERS_PROBE = "controlnet_cond_embedding.conv_in.weight"
DIFFERENCE_KEY = "difference"

# Keys that mark ControlNets for model families this project does not run.
_OTHER_FAMILIES = {
    "after_proj_list.18.bias": "HunyuanDiT",
    "controlnet_blocks.0.linear.weight": "Flux (Mistoline)",
    "controlnet_blocks.0.weight": "SD3 / Flux",
    "backbone.": "Stable Cascade",
}
_T2I_PROBES = ("body.0.block1.weight", "body.0.in_conv.weight", "adapter.body.0.resnets.0.block1.weight")


class ControlNetError(CheckpointError):
    """A control file we cannot use (unknown layout, unsupported variant, wrong model family)."""


def classify(state_dict: dict[str, torch.Tensor]) -> Kind:
    """The kind of control file; unsupported variants raise a ControlNetError naming them."""
    if "lora_controlnet" in state_dict:
        return "control-lora"
    if any(key.startswith("control_add_embedding.") for key in state_dict):
        raise ControlNetError("Union ControlNets (several control types in one file) are not supported yet")
    if DIFFUSERS_PROBE in state_dict:
        return "controlnet-diffusers"
    for marker, family in _OTHER_FAMILIES.items():
        if any(key.startswith(marker) for key in state_dict):
            raise ControlNetError(f"this is a {family} ControlNet; Latentgraph runs SD1.x, SD2.x and SDXL models")
    if CONTROL_PREFIX + LDM_PROBE in state_dict or LDM_PROBE in state_dict:
        return "controlnet"
    if any(probe in state_dict for probe in _T2I_PROBES):
        return "t2i-adapter"
    raise ControlNetError("not a ControlNet or T2I-Adapter file (no known key layout)")


def ldm_controlnet_tensors(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """Prefix-less LDM tensors of an original-layout file and whether it is a "difference" file."""
    difference = DIFFERENCE_KEY in state_dict
    if CONTROL_PREFIX + LDM_PROBE in state_dict:
        cut = len(CONTROL_PREFIX)
        tensors = {k[cut:]: v for k, v in state_dict.items() if k.startswith(CONTROL_PREFIX)}
    else:
        tensors = {k: v for k, v in state_dict.items() if k != DIFFERENCE_KEY}
    return tensors, difference


def diffusers_controlnet_to_ldm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ``ControlNetModel`` state dict under LDM ControlNet names (tensors not copied).

    The encoder shares diffusers' UNet naming (converted by diffusion.checkpoint.diffusers_unet);
    only the hint encoder and the zero convs have ControlNet-specific names.
    """
    hint_blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.", k))}
    hint_last = 2 * (len(hint_blocks) + 1)
    unet_part: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if m := re.match(r"controlnet_cond_embedding\.conv_in\.(.+)$", key):
            out[f"input_hint_block.0.{m.group(1)}"] = tensor
        elif m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)$", key):
            out[f"input_hint_block.{2 * (int(m.group(1)) + 1)}.{m.group(2)}"] = tensor
        elif m := re.match(r"controlnet_cond_embedding\.conv_out\.(.+)$", key):
            out[f"input_hint_block.{hint_last}.{m.group(1)}"] = tensor
        elif m := re.match(r"controlnet_down_blocks\.(\d+)\.(.+)$", key):
            out[f"zero_convs.{m.group(1)}.0.{m.group(2)}"] = tensor
        elif m := re.match(r"controlnet_mid_block\.(.+)$", key):
            out[f"middle_block_out.0.{m.group(1)}"] = tensor
        else:
            unet_part[key] = tensor
    out.update(diffusers_unet_to_ldm(unet_part))
    return out


def infer_controlnet_config(tensors: dict[str, torch.Tensor], arch: dict[str, Any]) -> tuple[ControlNetConfig, Family]:
    """Architecture and family of LDM ControlNet tensors (widths and depths from shapes).

    The encoder is read by the UNet's own inference; a ControlNet has no decoder, so the UNet's
    output conv is stood in for by a shape-only tensor and the decoder depths mirror the encoder.
    """
    try:
        conv_in = tensors["input_blocks.0.0.weight"]
        hint = [tensors[f"input_hint_block.{i}.weight"] for i in range(0, 64, 2) if f"input_hint_block.{i}.weight" in tensors]
    except KeyError as exc:
        raise ControlNetError(f"not an LDM ControlNet: missing {exc.args[0]!r}") from exc
    if len(hint) < 3 or len(hint) % 2:
        raise ControlNetError(f"unexpected ControlNet hint encoder with {len(hint)} convolutions")
    stand_in = {**tensors, "out.2.weight": torch.empty(conv_in.shape[1], conv_in.shape[0], 3, 3, device="meta")}
    try:
        probe = infer_unet_config(stand_in, {"num_heads": 1})
        family = detect_family(probe, {})
        unet = infer_unet_config(stand_in, head_config(family, arch), UPCAST_ATTENTION[family])
    except CheckpointError as exc:
        raise ControlNetError(f"ControlNet encoder not recognised: {exc}") from exc
    unet = dataclasses.replace(unet, transformer_depth_output=_depth_output(unet.transformer_depth, unet.num_res_blocks))
    widths = (hint[0].shape[0],) + tuple(conv.shape[0] for conv in hint[2:-1:2])
    return ControlNetConfig(unet=unet, hint_channels=int(hint[0].shape[1]), hint_widths=tuple(int(w) for w in widths)), family
