"""ComfyUI's `comfy.ops` for node packs that build their own layers (adapters, projections).

`disable_weight_init.X` are torch.nn layers that skip random initialisation (weights are loaded
right after); `manual_cast.X` also cast their weights to the input's dtype and device on each
call, so a pack's float32 layer runs under a half-precision model. Layers: Linear, Conv1d,
Conv2d, Conv3d, GroupNorm, LayerNorm, ConvTranspose2d, Embedding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["disable_weight_init", "manual_cast", "cast_bias_weight"]


def cast_bias_weight(layer: nn.Module, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's weight and bias in the input's dtype and on its device."""
    weight = layer.weight.to(device=input.device, dtype=input.dtype)
    bias = None if layer.bias is None else layer.bias.to(device=input.device, dtype=input.dtype)
    return weight, bias


def _no_init(base: type[nn.Module]) -> type[nn.Module]:
    return type(base.__name__, (base,), {"reset_parameters": lambda self: None,
                                         "__doc__": f"{base.__name__} without random initialisation."})


class disable_weight_init:  # noqa: N801 - ComfyUI's name
    Linear = _no_init(nn.Linear)
    Conv1d = _no_init(nn.Conv1d)
    Conv2d = _no_init(nn.Conv2d)
    Conv3d = _no_init(nn.Conv3d)
    GroupNorm = _no_init(nn.GroupNorm)
    LayerNorm = _no_init(nn.LayerNorm)
    ConvTranspose2d = _no_init(nn.ConvTranspose2d)
    Embedding = _no_init(nn.Embedding)

    @classmethod
    def conv_nd(cls, dims: int, *args: Any, **kwargs: Any) -> nn.Module:
        layers = {1: cls.Conv1d, 2: cls.Conv2d, 3: cls.Conv3d}
        if dims not in layers:
            raise ValueError(f"unsupported dimensions: {dims}")
        return layers[dims](*args, **kwargs)


class manual_cast(disable_weight_init):  # noqa: N801 - ComfyUI's name
    class Linear(disable_weight_init.Linear):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            return F.linear(input, *cast_bias_weight(self, input))

    class Conv2d(disable_weight_init.Conv2d):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            return self._conv_forward(input, *cast_bias_weight(self, input))

    class GroupNorm(disable_weight_init.GroupNorm):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            if self.weight is None:
                return super().forward(input)
            return F.group_norm(input, self.num_groups, *cast_bias_weight(self, input), self.eps)

    class LayerNorm(disable_weight_init.LayerNorm):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            if self.weight is None:
                return super().forward(input)
            return F.layer_norm(input, self.normalized_shape, *cast_bias_weight(self, input), self.eps)
