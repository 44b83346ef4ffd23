"""Byte sizes of cached values: tensors, nested containers and objects that know their size."""

from __future__ import annotations

import sys
from typing import Any

_SMALL = (int, float, bool, type(None), complex)


def value_nbytes(value: Any, _seen: set[int] | None = None) -> int:
    """Approximate RAM held by `value`; a tensor storage shared by several values counts once."""
    if isinstance(value, _SMALL):
        return 32
    if isinstance(value, (str, bytes, bytearray)):
        return sys.getsizeof(value)
    seen = _seen if _seen is not None else set()
    sizer = getattr(value, "cache_size_bytes", None)
    if callable(sizer) and not isinstance(value, type):
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
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return 64 + sum(value_nbytes(k, seen) + value_nbytes(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return 56 + sum(value_nbytes(v, seen) for v in value)
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 64


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
