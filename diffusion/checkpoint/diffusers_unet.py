"""Renaming a diffusers-layout UNet2DConditionModel state dict to the LDM names our UNet uses.

UNet-only files in ``models/diffusion_models`` are often saved by diffusers. Inside each
transformer the names already agree; only block addressing differs: diffusers counts
``down_blocks.i.resnets.j`` / ``attentions.j`` / ``downsamplers.0`` where LDM numbers every block
in one ``input_blocks.N`` sequence (and likewise for the decoder and the middle).
"""

from __future__ import annotations

import re

import torch

from diffusion.checkpoint.errors import CheckpointError

PROBE_KEY = "down_blocks.0.resnets.0.conv1.weight"

_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_SIMPLE = {
    "conv_in.": "input_blocks.0.0.",
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}


def is_diffusers_unet(state_dict: dict[str, torch.Tensor]) -> bool:
    return PROBE_KEY in state_dict and "input_blocks.0.0.weight" not in state_dict


def _resnet(prefix: str, part_and_kind: str) -> str:
    part, _, kind = part_and_kind.rpartition(".")
    if part not in _RESNET_PARTS:
        raise CheckpointError(f"unexpected ResNet parameter {part_and_kind!r} in a diffusers UNet")
    return f"{prefix}.{_RESNET_PARTS[part]}.{kind}"


def diffusers_unet_to_ldm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors (not copied) under LDM ``model.diffusion_model`` names, without the prefix."""
    per_level = 1 + max(
        int(m.group(1)) for key in state_dict if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", key))
    )
    up_has_attention = {
        int(m.group(1)) for key in state_dict if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", key))
    }
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        out[_rename(key, per_level, up_has_attention)] = tensor
    return out


def _rename(key: str, nrb: int, up_has_attention: set[int]) -> str:
    for old, new in _SIMPLE.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
        level, block, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        return _resnet(f"input_blocks.{1 + level * (nrb + 1) + block}.0", rest)
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$", key):
        level, block, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        return f"input_blocks.{1 + level * (nrb + 1) + block}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", key):
        level, kind = int(m.group(1)), m.group(2)
        return f"input_blocks.{(level + 1) * (nrb + 1)}.0.op.{kind}"
    if m := re.match(r"mid_block\.resnets\.(\d)\.(.+)$", key):
        return _resnet(f"middle_block.{2 * int(m.group(1))}", m.group(2))
    if m := re.match(r"mid_block\.attentions\.0\.(.+)$", key):
        return f"middle_block.1.{m.group(1)}"
    if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
        level, block, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        return _resnet(f"output_blocks.{level * (nrb + 1) + block}.0", rest)
    if m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$", key):
        level, block, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        return f"output_blocks.{level * (nrb + 1) + block}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", key):
        level, kind = int(m.group(1)), m.group(2)
        slot = 2 if level in up_has_attention else 1
        return f"output_blocks.{level * (nrb + 1) + nrb}.{slot}.conv.{kind}"
    raise CheckpointError(f"unexpected key in a diffusers UNet: {key!r}")
