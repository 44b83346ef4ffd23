"""Byte sizes of cached values: tensors, nested containers and objects that know their size.

Sizing records what it counted in a `seen` dict, so that what several values hold counts once:
- a tensor storage (key: its device and data pointer), however many tensors view it;
- an object with `cache_size_bytes()` (models do; key: its id), wherever it appears;
- the parts such an object declares with `cache_shared_parts()`: an iterable of `(part, nbytes)`
  for the part of `cache_size_bytes()` that other objects may share, such as the network
  behind several clones of a model handle (key: the part's id).
Those keys map to the bytes counted for them; containers are recorded with 0 (visited). The
output cache keeps one such record per entry and counts each key once across all its entries
(engine.cache). The keys cannot collide: ids are ints, storages are tuples, and while a value is
being sized, or held by a cache entry, every object and storage it reaches is alive, so no two of
them share an address.
"""

from __future__ import annotations

import sys
from typing import Any, Hashable

_ATOM_TYPES = frozenset({int, float, bool, type(None), complex})
_ATOM_BYTES = 32

Seen = dict[Hashable, int]  # what sizing counted: key -> bytes (0 for visited containers)


def value_nbytes(value: Any, _seen: Seen | None = None) -> int:
    """Approximate RAM held by `value`; what it holds twice counts once (see the module doc).
    Plain numbers cost a flat 32 bytes."""
    kind = type(value)
    if kind in _ATOM_TYPES:
        return _ATOM_BYTES
    if kind is str or kind is bytes or kind is bytearray:
        return sys.getsizeof(value)
    seen = _seen if _seen is not None else {}
    if kind is list or kind is tuple:
        return 56 + 8 * len(value) + sum(value_nbytes(item, seen) for item in value)
    if kind is dict:  # a plain dict (ui results) has no cache_size_bytes and is no tensor
        return _dict_nbytes(value, seen)
    sizer = getattr(value, "cache_size_bytes", None)
    if sizer is not None and callable(sizer) and not isinstance(value, type):
        return _sized_object_nbytes(value, sizer, seen)
    if _is_tensor(value):
        return _tensor_nbytes(value, seen)
    if isinstance(value, dict):
        return _dict_nbytes(value, seen)
    if isinstance(value, (list, tuple, set, frozenset)):
        if id(value) in seen:
            return 0
        seen[id(value)] = 0
        return 56 + sum(value_nbytes(v, seen) for v in value)
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 64


def _dict_nbytes(value: dict, seen: Seen) -> int:
    if id(value) in seen:
        return 0
    seen[id(value)] = 0
    total = 64 + 8 * len(value)
    for key, item in value.items():
        total += value_nbytes(key, seen) + value_nbytes(item, seen)
    return total


def _sized_object_nbytes(value: Any, sizer: Any, seen: Seen) -> int:
    """An object that reports its size: counted once, and its shared parts once each."""
    key = id(value)
    if key in seen:
        return 0
    try:
        size = int(sizer())
    except Exception:
        size = 0
    counted = 0
    parts = getattr(value, "cache_shared_parts", None)
    if parts is not None and callable(parts):
        try:
            for part, part_bytes in parts():
                part_bytes = int(part_bytes)
                size -= part_bytes  # what is left is the object's own
                if id(part) not in seen:
                    seen[id(part)] = part_bytes
                    counted += part_bytes
        except Exception:
            pass
    own = max(size, 0)
    seen[key] = own
    return own + counted


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to size ints
    return torch is not None and isinstance(value, torch.Tensor)


def _tensor_nbytes(tensor: Any, seen: Seen) -> int:
    if tensor.is_meta:
        return 0
    try:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        nbytes = int(storage.nbytes())
    except (RuntimeError, NotImplementedError):  # sparse / nested tensors have no storage
        return int(tensor.element_size() * tensor.nelement())
    if not pointer:
        return nbytes
    key = (tensor.device.type, tensor.device.index, pointer)
    if key in seen:
        return 0
    seen[key] = nbytes
    return nbytes
