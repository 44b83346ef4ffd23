"""The shared shape of every LoRA/LyCORIS adapter: ΔW from the adapter's tensors, then the merge.

An adapter is one patch value of the weight-patch contract: ``calculate_weight(weight, …)``
returns the new weight. Most algorithms are additive (``W + strength·ΔW``, with ΔW already
multiplied by their own ``alpha / rank`` scale); DoRA re-normalises the merged weight's columns
to the trained magnitudes afterwards. Multiplicative ones (OFT/BOFT) override :meth:`merge`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import torch

# _identity: what weight_patches.calculate_weight passes when an entry has no function.
from diffusion.weight_patches import WeightAdapter, _identity

log = logging.getLogger(__name__)

Function = Callable[[torch.Tensor], torch.Tensor]
StateDict = Mapping[str, torch.Tensor]


def alpha_scale(alpha: torch.Tensor | float | None, rank: int) -> float:
    """kohya/LyCORIS scaling ``alpha / rank``; a missing or zero alpha means alpha = rank (scale 1)."""
    if alpha is None:
        return 1.0
    value = float(alpha)
    return 1.0 if value == 0.0 else value / rank


def weight_decompose(
    weight: torch.Tensor, merged: torch.Tensor, dora_scale: torch.Tensor, strength: float
) -> torch.Tensor:
    """DoRA: rescale ``merged = W + ΔW`` so each output row (or input column) has the trained norm.

    The magnitude vector's shape says which axis: ``[out, 1, …]`` per output row (LyCORIS and PEFT
    default), ``[1, in, …]`` per input column. The norm is the merged weight's (the DoRA paper,
    LyCORIS and PEFT; ComfyUI takes the original weight's norm on the output axis). Strength blends
    linearly between W and the decomposed weight, as ComfyUI does.
    """
    magnitude = dora_scale.to(merged)
    if magnitude.shape[0] == merged.shape[0] and merged.shape[0] != 1:
        norm = merged.reshape(merged.shape[0], -1).norm(dim=1)
        norm = norm.reshape(merged.shape[0], *[1] * (merged.dim() - 1))
    else:
        columns = merged.transpose(0, 1)
        norm = columns.reshape(columns.shape[0], -1).norm(dim=1)
        norm = norm.reshape(1, columns.shape[0], *[1] * (merged.dim() - 2))
    decomposed = merged * (magnitude.reshape(norm.shape) / (norm + torch.finfo(merged.dtype).eps))
    return weight + strength * (decomposed - weight)


class DeltaAdapter(WeightAdapter):
    """An adapter whose effect is ``W + strength·ΔW(W)`` (optionally DoRA-normalised)."""

    name = "delta"

    def __init__(self, loaded_keys: tuple[str, ...], dora_scale: torch.Tensor | None = None) -> None:
        self.loaded_keys = set(loaded_keys)
        self.dora_scale = dora_scale

    @property
    def weights(self) -> tuple[torch.Tensor, ...]:
        """The adapter's tensors (ComfyUI adapters expose theirs as ``weights``)."""
        return tuple(value for value in vars(self).values() if isinstance(value, torch.Tensor))

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        """ΔW (already scaled by the adapter's own alpha/rank) for `weight`, in `weight`'s dtype."""
        raise NotImplementedError

    def add_delta(self, out: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
        """``out += alpha·ΔW(weight)`` in place (`out` may be `weight` itself); returns `out`."""
        return out.add_(_to_shape(self.delta(weight), out.shape), alpha=alpha)

    def fits(self, shape: torch.Size) -> bool:
        """Whether this adapter can patch a weight of `shape` (cheap; no ΔW is built)."""
        return True

    def merge(self, weight: torch.Tensor, strength: float, function: Function) -> torch.Tensor:
        """The new weight; `weight` is the caller's private working copy and is updated in place."""
        if function is _identity and self.dora_scale is None:
            return self.add_delta(weight, weight, strength)  # the common case: no ΔW tensor at all
        diff = self.add_delta(torch.zeros_like(weight), weight, 1.0)
        if self.dora_scale is not None:
            return weight_decompose(weight, weight + function(diff), self.dora_scale, strength)
        return weight.add_(function(strength * diff))

    def calculate_weight(
        self,
        weight: torch.Tensor,
        key: str,
        strength: float,
        strength_model: float,
        offset,
        function: Function | None,
        intermediate_dtype: torch.dtype = torch.float32,
        original_weights=None,
    ) -> torch.Tensor:
        """The contract's entry point: the new weight for `key` (strength_model/offset are the caller's)."""
        if not self.fits(weight.shape):
            log.warning("%s patch for %s does not fit its shape %s; skipped", self.name, key, tuple(weight.shape))
            return weight
        work = weight.to(intermediate_dtype)  # the contract hands a private copy: updated in place
        return self.merge(work, strength, function or _identity).to(weight.dtype)


def _to_shape(diff: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """ΔW in the weight's shape: a Linear-shaped ΔW fits a 1×1 conv weight and vice versa."""
    if diff.shape == shape:
        return diff
    if diff.numel() != torch.Size(shape).numel():
        raise ValueError(f"ΔW of shape {tuple(diff.shape)} cannot patch a weight of shape {tuple(shape)}")
    return diff.reshape(shape)
