"""LoRA (kohya, diffusers/PEFT, LoCon, DoRA) and whole-tensor patches (``.diff``, ``.set_weight``).

Each ``load`` classmethod recognises its tensors for one module name of a LoRA file and returns
an adapter (or None), recording the file keys it used so the loader can report the rest.
"""

from __future__ import annotations

import math

import torch

from diffusion.lora.base import DeltaAdapter, StateDict, alpha_scale

# (up, down) tensor suffixes in the naming schemes people's files use (model-formats §3.2).
LORA_SUFFIXES = (
    (".lora_up.weight", ".lora_down.weight"),  # kohya, LyCORIS LoCon
    (".lora_B.weight", ".lora_A.weight"),  # PEFT / diffusers ≥ 0.21
    ("_lora.up.weight", "_lora.down.weight"),  # diffusers attention processors
    (".lora.up.weight", ".lora.down.weight"),
    (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"),  # old diffusers text encoder
    (".lora_B.default.weight", ".lora_A.default.weight"),
    (".lora_B", ".lora_A"),
)


class LoRAAdapter(DeltaAdapter):
    """ΔW = (alpha/rank)·up·down; convolutions flatten to matrices, a Tucker ``mid`` core is folded in."""

    name = "lora"

    def __init__(
        self,
        loaded_keys: tuple[str, ...],
        up: torch.Tensor,
        down: torch.Tensor,
        alpha: torch.Tensor | float | None,
        mid: torch.Tensor | None = None,
        dora_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__(loaded_keys, dora_scale)
        self.up, self.down, self.mid = up, down, mid
        self.scale = alpha_scale(alpha, down.shape[0])

    @classmethod
    def load(cls, name: str, sd: StateDict, alpha, dora_scale) -> LoRAAdapter | None:
        for up_suffix, down_suffix in LORA_SUFFIXES:
            up_key, down_key = name + up_suffix, name + down_suffix
            if up_key in sd and down_key in sd:
                mid_key = f"{name}.lora_mid.weight"
                mid = sd.get(mid_key)
                keys = (up_key, down_key) + ((mid_key,) if mid is not None else ())
                return cls(keys, sd[up_key], sd[down_key], alpha, mid, dora_scale)
        return None

    def fits(self, shape: torch.Size) -> bool:
        kernel = math.prod(self.mid.shape[2:]) if self.mid is not None else math.prod(self.down.shape[2:])
        return shape[0] == self.up.shape[0] and math.prod(shape[1:]) == self.down.shape[1] * kernel

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        up = self.up.to(weight).flatten(1) * self.scale  # scale the small factor, not ΔW
        down = self.down.to(weight).flatten(1)
        if self.mid is not None:  # Tucker: [out, r] · mid[r, r, k…] · [r, in] → [out, in, k…]
            return torch.einsum("ab...,oa,bi->oi...", self.mid.to(weight), up, down)
        return up @ down

    def add_delta(self, out: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
        if self.mid is not None or not out.is_contiguous():
            return super().add_delta(out, weight, alpha)
        # one fused pass over the weight: out += alpha·scale·up·down, no ΔW tensor
        up, down = self.up.to(out).flatten(1), self.down.to(out).flatten(1)
        out.view(out.shape[0], -1).addmm_(up, down, alpha=alpha * self.scale)
        return out


class DiffAdapter(DeltaAdapter):
    """A stored ΔW (``.diff``, ``.diff_b``, ``.w_norm``, ``.b_norm``): full fine-tune differences."""

    name = "diff"

    def __init__(self, loaded_keys: tuple[str, ...], diff: torch.Tensor) -> None:
        super().__init__(loaded_keys)
        self.diff = diff

    def fits(self, shape: torch.Size) -> bool:
        return self.diff.numel() == math.prod(shape)

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        return self.diff.to(weight)


class SetAdapter(DeltaAdapter):
    """``.set_weight``: the weight is replaced (strength blends from the old weight to the new)."""

    name = "set"

    def __init__(self, loaded_keys: tuple[str, ...], value: torch.Tensor) -> None:
        super().__init__(loaded_keys)
        self.value = value

    def fits(self, shape: torch.Size) -> bool:
        return self.value.numel() == math.prod(shape)

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        return self.value.to(weight).reshape(weight.shape) - weight
