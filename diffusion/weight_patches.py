"""Weight patches as ComfyUI records them, and their application to one shared network.

A patch set is ``{key: [entry, …]}`` with ComfyUI's state-dict keys and entries
``(strength_patch, value, strength_model, offset, function)``. :func:`calculate_weight` turns a
key's entries into its new weight; :class:`PatchedWeights` merges a whole set into a network that
several copy-on-write handles share and restores the originals bit for bit. Adapters (LoRA,
LoHa, …) subclass :class:`WeightAdapter`; see docs/MODEL_INTERFACE.md §1 for the value forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

Offset = tuple[int, int, int]
"""``(dim, start, length)``: the patch applies to ``weight.narrow(dim, start, length)``."""

PatchEntry = tuple[float, Any, float, Offset | None, Callable[[torch.Tensor], torch.Tensor] | None]
"""``(strength_patch, value, strength_model, offset, function)`` exactly as ComfyUI stores it."""

KeyPatches = Mapping[str, Sequence[PatchEntry]]


class WeightAdapter:
    """Base of patch values that compute a new weight themselves (LoRA, LoHa, LoKr, OFT, …).

    ``calculate_weight`` receives the current weight (fp32 or `intermediate_dtype`, on the compute
    device, safe to modify in place) and returns the new one; ``strength`` scales the adapter's
    change, ``function`` post-processes the change (ComfyUI's merge helpers pass one).
    """

    name: str = "adapter"
    loaded_keys: set[str]
    weights: Sequence[torch.Tensor]

    def calculate_weight(
        self,
        weight: torch.Tensor,
        key: str,
        strength: float,
        strength_model: float,
        offset: Offset | None,
        function: Callable[[torch.Tensor], torch.Tensor],
        intermediate_dtype: torch.dtype = torch.float32,
        original_weights: Mapping[str, Sequence[Any]] | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _pad_to(weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if weight.dim() != len(shape) or any(new < old for new, old in zip(shape, weight.shape)):
        raise ValueError(f"cannot pad a weight of shape {tuple(weight.shape)} to {tuple(shape)}")
    padded = weight.new_zeros(shape)
    padded[tuple(slice(0, n) for n in weight.shape)] = weight
    return padded


def _effective_weight(stack: Sequence[Any], like: torch.Tensor, key: str, intermediate_dtype: torch.dtype) -> torch.Tensor:
    """The weight another model's ``get_key_patches`` list describes: its base plus its patches."""
    head = stack[0]
    base = head[0].to(like.device, intermediate_dtype, copy=True)
    if len(head) > 1 and callable(head[1]):  # ComfyUI's (weight, convert_func) head
        base = head[1](base, inplace=True)
    return calculate_weight(stack[1:], base, key, intermediate_dtype)


def calculate_weight(
    entries: Sequence[PatchEntry],
    weight: torch.Tensor,
    key: str,
    intermediate_dtype: torch.dtype = torch.float32,
    original_weights: Mapping[str, Sequence[Any]] | None = None,
) -> torch.Tensor:
    """Apply a key's entries in order to `weight` (modified in place where possible; returned).

    `weight` must be a private working copy (fp32 on the compute device). Per entry: the offset
    narrows the target, ``strength_model`` scales the base, then the value adds its change. A diff
    whose shape does not match is skipped with a warning (padded when it asks ``pad_weight``).
    """
    for strength, value, strength_model, offset, function in entries:
        function = function or _identity
        whole = None
        if offset is not None:
            whole, weight = weight, weight.narrow(offset[0], offset[1], offset[2])
        if strength_model != 1.0:
            weight *= strength_model
        if isinstance(value, list):
            value = (_effective_weight(value, weight, key, intermediate_dtype),)
        if isinstance(value, WeightAdapter):
            result = value.calculate_weight(
                weight, key, strength, strength_model, offset, function, intermediate_dtype, original_weights
            )
            if result is None:
                log.warning("weight patch %s could not be applied to %s", value.name, key)
            elif whole is None:
                weight = result
            elif result is not weight:
                weight.copy_(result)
        else:
            weight = _apply_tuple(value, weight, key, strength, function, original_weights)
        if whole is not None:
            weight = whole
    return weight


def _apply_tuple(
    value: tuple,
    weight: torch.Tensor,
    key: str,
    strength: float,
    function: Callable[[torch.Tensor], torch.Tensor],
    original_weights: Mapping[str, Sequence[Any]] | None,
) -> torch.Tensor:
    if len(value) == 1:
        kind, args = "diff", value
    elif len(value) == 2 and isinstance(value[0], str):
        kind, args = value
    else:
        log.warning("weight patch for %s is not a known form (%d items); skipped", key, len(value))
        return weight
    if kind == "diff":
        diff = args[0]
        pad = len(args) > 1 and bool(args[1].get("pad_weight"))
        if pad and diff.shape != weight.shape:
            weight = _pad_to(weight, diff.shape)
        if strength == 0.0:
            return weight
        if diff.shape != weight.shape:
            log.warning("weight patch for %s skipped: shape %s != %s", key, tuple(diff.shape), tuple(weight.shape))
            return weight
        weight += function(strength * diff.to(weight.device, weight.dtype))
    elif kind == "set":
        weight.copy_(args[0].to(weight.device, weight.dtype))
    elif kind == "model_as_lora":
        if original_weights is None or key not in original_weights:
            log.warning("model_as_lora patch for %s needs the model's original weights; skipped", key)
            return weight
        target = args[0].to(weight.device, weight.dtype)
        original = original_weights[key][0][0].to(weight.device, weight.dtype)
        weight += function(strength * (target - original))
    else:
        log.warning("weight patch type %r for %s is not known; skipped", kind, key)
    return weight


def needs_original_weights(entries: Sequence[PatchEntry]) -> bool:
    """True when an entry computes its change against the unpatched weight (``model_as_lora``)."""
    return any(
        isinstance(e[1], tuple) and len(e[1]) == 2 and e[1][0] == "model_as_lora" for e in entries
    )


class PatchedWeights:
    """Which patch set one shared network currently holds, and the original tensors to restore.

    Patched weights *replace* a parameter's tensor instead of writing into it, so the original
    tensor (handed out by ``get_key_patches`` and shared with whatever else holds it) is never
    modified; restoring puts it back, bit for bit. The backup lives on the offload device.
    """

    def __init__(self, module: nn.Module, keys: Mapping[str, str], offload_device: torch.device | str = "cpu") -> None:
        self.module = module
        self.keys = dict(keys)  # external (ComfyUI) key → parameter name in `module`
        self.offload_device = torch.device(offload_device)
        self.applied: object = None  # identity of the patch set in the weights (None: originals)
        self.backups: dict[str, torch.Tensor] = {}

    def parameter(self, key: str) -> nn.Parameter:
        return self.module.get_parameter(self.keys[key])

    def original(self, key: str) -> torch.Tensor:
        """The unpatched tensor of `key` (wherever it currently lives)."""
        backup = self.backups.get(key)
        return backup if backup is not None else self.parameter(key).data

    @torch.no_grad()
    def restore(self) -> None:
        """Put every original tensor back; the network then holds its checkpoint weights."""
        for key, backup in self.backups.items():
            param = self.parameter(key)
            param.data = backup.to(param.device)
        self.backups.clear()
        self.applied = None

    @torch.no_grad()
    def apply(self, patches: KeyPatches, identity: object) -> None:
        """Hold exactly `patches` (identified by `identity`); nothing happens if already held."""
        if not patches:
            if self.backups:
                self.restore()
            return
        if identity is not None and identity == self.applied:
            return
        self.restore()
        originals = None
        if any(needs_original_weights(entries) for entries in patches.values()):
            originals = {key: [(self.original(key),)] for key in patches if key in self.keys}
        for key, entries in patches.items():
            if key not in self.keys or not entries:
                continue
            param = self.parameter(key)
            current = param.data
            work = current.to(torch.float32, copy=True)
            merged = calculate_weight(entries, work, key, torch.float32, originals)
            self.backups[key] = current if current.device == self.offload_device else current.to(self.offload_device)
            param.data = merged.to(current.dtype)
        self.applied = identity

    def patched_bytes(self) -> int:
        """Extra bytes held while patched: the patched tensors beside their originals."""
        return sum(t.numel() * t.element_size() for t in self.backups.values())


def record_patches(
    target: dict[str, list[PatchEntry]],
    known: Container[str],
    patches: Mapping[Any, Any],
    strength_patch: float = 1.0,
    strength_model: float = 1.0,
) -> list[Any]:
    """ComfyUI's ``add_patches`` bookkeeping: append entries for the keys the network has.

    A dict key is a state-dict key, or ``(key, offset)`` / ``(key, offset, function)`` to patch a
    slice. Returns the dict keys that were recorded; unknown keys are left out (callers report them).
    """
    accepted = []
    for spec, value in patches.items():
        offset = function = None
        if isinstance(spec, str):
            key = spec
        else:
            key, offset = spec[0], spec[1]
            function = spec[2] if len(spec) > 2 else None
        if key in known:
            target.setdefault(key, []).append((strength_patch, value, strength_model, offset, function))
            accepted.append(spec)
    return accepted


def copy_patch_lists(patches: Mapping[str, list[PatchEntry]]) -> dict[str, list[PatchEntry]]:
    """A clone's own patch dict: new lists, shared (immutable) entries."""
    return {key: list(entries) for key, entries in patches.items()}


def key_patches(
    weights: PatchedWeights, patches: Mapping[str, Sequence[PatchEntry]], filter_prefix: str | None = None
) -> dict[str, list[Any]]:
    """``{key: [(original,), *entries]}`` for every key, as ComfyUI's ``get_key_patches``."""
    return {
        key: [(weights.original(key),), *patches.get(key, ())]
        for key in weights.keys
        if filter_prefix is None or key.startswith(filter_prefix)
    }



def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, WeightAdapter):
        return sum(_tensor_bytes(t) for t in getattr(value, "weights", ()))
    if isinstance(value, tuple):
        return sum(_tensor_bytes(item) for item in value)
    return 0  # lists hold another model's weights (counted with that model); functions, numbers


def patch_value_parts(patches: Mapping[str, Sequence[PatchEntry]]) -> list[tuple[Any, int]]:
    """``(value, bytes)`` for every patch value, for the output cache's accounting.

    Values are shared by the clones that stack on them, so the cache counts each once however
    many handles hold it.
    """
    parts: dict[int, tuple[Any, int]] = {}
    for entries in patches.values():
        for entry in entries:
            value = entry[1]
            if id(value) not in parts:
                parts[id(value)] = (value, _tensor_bytes(value))
    return list(parts.values())
