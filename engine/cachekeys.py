"""Structural cache keys: what a node computes, independent of node ids.

key(node) = digest(class_type, IS_CHANGED result, constant inputs by name, and for every link
the source's key and output slot). Ancestors enter by position, never by id, so renumbering or
moving nodes keeps the cache, and identical subgraphs share one key (they run once). The node id
enters only for NOT_IDEMPOTENT nodes and nodes that take a hidden UNIQUE_ID.
"""

from __future__ import annotations

import hashlib
import marshal
import math
import os
from typing import Any

ATOM_TYPES = frozenset({str, int, float, bool, type(None)})


class Uncacheable(Exception):
    """A constant or IS_CHANGED value we cannot compare reliably; the node always re-runs."""


def canonical(value: Any) -> Any:
    """A value made of atoms and tuples only, equal exactly when the inputs are equal."""
    kind = type(value)
    if kind in ATOM_TYPES:
        return value
    if kind is list or kind is tuple:
        return ("L", tuple(canonical(v) for v in value))
    if kind is dict:
        return ("D", tuple(sorted((str(k), canonical(v)) for k, v in value.items())))
    raise Uncacheable(f"{kind.__name__} value")


def is_changed_token(value: Any) -> Any:
    """Canonical form of an IS_CHANGED result; NaN (ComfyUI's "always re-run") never matches."""
    if isinstance(value, float) and math.isnan(value):
        return never_equal()
    return canonical(value)


def never_equal() -> tuple[str, bytes]:
    """A token no other computation can produce, so the node misses the cache."""
    return ("unique", os.urandom(16))


def digest(material: tuple[Any, ...], _hash=hashlib.blake2b, _dumps=marshal.dumps) -> bytes:
    """128-bit digest of canonical material (atoms, bytes and tuples only).

    marshal format 0 is used because it is fast and byte-for-byte deterministic for equal
    values: unlike later versions it writes no back-references and no "interned" flags, and it
    keeps int, float, bool and str apart.
    """
    return _hash(_dumps(material, 0), digest_size=16).digest()
