"""Renaming a diffusers-layout AutoencoderKL state dict to the LDM names our VAE uses.

VAEs are often shared as diffusers ``diffusion_pytorch_model.safetensors`` files. The two layouts
hold the same tensors; only names differ, plus diffusers' decoder counts levels from the lowest
resolution (``up_blocks.0`` is LDM's ``up.3``). Attention projections are Linear ([C, C]) in
diffusers and 1×1 convs in LDM; the VAE builder reshapes them.
"""

from __future__ import annotations

import re

import torch

from diffusion.checkpoint.errors import CheckpointError

PROBE_KEY = "encoder.down_blocks.0.resnets.0.conv1.weight"

_RESNET_PARTS = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "conv_shortcut": "nin_shortcut",
}
# Current names first, then the pre-0.14 ones some files still carry.
_ATTENTION_PARTS = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
    "query": "q",
    "key": "k",
    "value": "v",
    "proj_attn": "proj_out",
}
_TOP_LEVEL = {"conv_in", "conv_out", "quant_conv", "post_quant_conv"}


def is_diffusers_vae(state_dict: dict[str, torch.Tensor]) -> bool:
    return PROBE_KEY in state_dict


def _levels(state_dict: dict[str, torch.Tensor], side: str) -> int:
    pattern = re.compile(rf"^{side}\.(?:down|up)_blocks\.(\d+)\.")
    found = [int(m.group(1)) for key in state_dict if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def _rename(key: str, decoder_levels: int) -> str:
    side, _, rest = key.partition(".")
    if side in _TOP_LEVEL or key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    if side not in ("encoder", "decoder"):
        raise CheckpointError(f"unexpected key in a diffusers VAE: {key!r}")
    if rest.startswith(("conv_in.", "conv_out.")):
        return key
    if rest.startswith("conv_norm_out."):
        return f"{side}.norm_out.{rest.removeprefix('conv_norm_out.')}"
    if match := re.match(r"mid_block\.resnets\.(\d)\.(\w+)\.(weight|bias)$", rest):
        index, part, kind = match.groups()
        return f"{side}.mid.block_{int(index) + 1}.{_RESNET_PARTS[part]}.{kind}"
    if match := re.match(r"mid_block\.attentions\.0\.(.+)\.(weight|bias)$", rest):
        part, kind = match.groups()
        if part not in _ATTENTION_PARTS:
            raise CheckpointError(f"unexpected attention key in a diffusers VAE: {key!r}")
        return f"{side}.mid.attn_1.{_ATTENTION_PARTS[part]}.{kind}"
    if match := re.match(r"(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(weight|bias)$", rest):
        _, level, block, part, kind = match.groups()
        name = "down" if side == "encoder" else "up"
        level_index = int(level) if side == "encoder" else decoder_levels - 1 - int(level)
        return f"{side}.{name}.{level_index}.block.{block}.{_RESNET_PARTS[part]}.{kind}"
    if match := re.match(
        r"(down|up)_blocks\.(\d+)\.(downsamplers|upsamplers)\.0\.conv\.(weight|bias)$", rest
    ):
        _, level, _sampler, kind = match.groups()
        if side == "encoder":
            return f"encoder.down.{level}.downsample.conv.{kind}"
        return f"decoder.up.{decoder_levels - 1 - int(level)}.upsample.conv.{kind}"
    raise CheckpointError(f"unexpected key in a diffusers VAE: {key!r}")


def diffusers_vae_to_ldm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors (not copied) under LDM ``first_stage_model`` names, without the prefix."""
    decoder_levels = _levels(state_dict, "decoder")
    return {_rename(key, decoder_levels): tensor for key, tensor in state_dict.items()}
