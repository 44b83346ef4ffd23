"""Byte sizes of cached values: tensors, nested containers and objects that know their size."""

from __future__ import annotations

import sys
from typing import Any

_ATOM_TYPES = frozenset({int, float, bool, type(None), complex})
_ATOM_BYTES = 32


def value_nbytes(value: Any, _seen: set[int] | None = None) -> int:
    """Approximate RAM held by `value`; a tensor storage shared by several values counts once.

    Objects may define `cache_size_bytes()` (models do). Plain numbers cost a flat 32 bytes;
    this is called for every cached node output, so the common cases stay cheap.
    """
    kind = type(value)
    if kind in _ATOM_TYPES:
        return _ATOM_BYTES
    if kind is list or kind is tuple:
        total = 56 + 8 * len(value)
        for item in value:
            if type(item) in _ATOM_TYPES:
                total += _ATOM_BYTES
            else:
                if _seen is None:
                    _seen = set()
                total += value_nbytes(item, _seen)
        return total
    if kind is str or kind is bytes or kind is bytearray:
        return sys.getsizeof(value)
    seen = _seen if _seen is not None else set()
    if kind is dict:  # a plain dict (ui results) has no cache_size_bytes and is no tensor
        return _dict_nbytes(value, seen)
    sizer = getattr(value, "cache_size_bytes", None)
    if sizer is not None and callable(sizer) and not isinstance(value, type):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        try:
            return int(sizer())
        except Exception:
            return 0
    if _is_tensor(value):
        return _tensor_nbytes(value, seen)
    if isinstance(value, dict):
        return _dict_nbytes(value, seen)
    if isinstance(value, (list, tuple, set, frozenset)):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return 56 + sum(value_nbytes(v, seen) for v in value)
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 64


def outputs_nbytes(outputs: list[list[Any]]) -> int:
    """`value_nbytes(outputs)` for a node's per-slot output lists, inlined one level.

    Every cached node result is sized, so the usual case (each slot a list of a few plain
    values) costs no recursive call; anything else takes value_nbytes with one shared `seen`.
    """
    total = 56 + 8 * len(outputs)
    seen: set[int] | None = None
    for slot in outputs:
        if type(slot) is list:
            total += 56 + 8 * len(slot)
            for item in slot:
                if type(item) in _ATOM_TYPES:
                    total += _ATOM_BYTES
                else:
                    if seen is None:
                        seen = set()
                    total += value_nbytes(item, seen)
        else:
            if seen is None:
                seen = set()
            total += value_nbytes(slot, seen)
    return total


def _dict_nbytes(value: dict, seen: set[int]) -> int:
    if id(value) in seen:
        return 0
    seen.add(id(value))
    total = 64 + 8 * len(value)
    for key, item in value.items():
        # string keys and lists of plain values (ui dicts) are sized inline, as value_nbytes would
        total += sys.getsizeof(key) if type(key) is str else value_nbytes(key, seen)
        if type(item) is list:
            total += 56 + 8 * len(item)
            for element in item:
                total += _ATOM_BYTES if type(element) in _ATOM_TYPES else value_nbytes(element, seen)
        else:
            total += value_nbytes(item, seen)
    return total


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to size ints
    return torch is not None and isinstance(value, torch.Tensor)


def _tensor_nbytes(tensor: Any, seen: set[int]) -> int:
    if tensor.is_meta:
        return 0
    try:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key and key in seen:
            return 0
        if key:
            seen.add(key)
        return int(storage.nbytes())
    except (RuntimeError, NotImplementedError):  # sparse / nested tensors have no storage
        return int(tensor.element_size() * tensor.nelement())
