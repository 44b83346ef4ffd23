"""Structural cache keys: what a node computes, independent of node ids.

key(node) = the id a KeyTable gives to the node's material: class_type, IS_CHANGED result, constant
inputs by name, and for every link the source's key and output slot. Ancestors enter by
position, never by id, so renumbering or moving nodes keeps the cache, and identical subgraphs
share one key (they run once). The node id enters only for NOT_IDEMPOTENT nodes and nodes that
take a hidden UNIQUE_ID.
"""

from __future__ import annotations

import itertools
import marshal
import math
import os
from typing import Any, Callable, Iterable

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


def constant_token(value: Any) -> Any:
    """A constant input's part of the key material; a value we cannot compare never matches."""
    try:
        return canonical(value)
    except Uncacheable:
        return never_equal()


def is_changed_token(value: Any) -> Any:
    """Canonical form of an IS_CHANGED result; NaN (ComfyUI's "always re-run") never matches."""
    if isinstance(value, float) and math.isnan(value):
        return never_equal()
    return canonical(value)


def never_equal() -> tuple[str, bytes]:
    """A token no other computation can produce, so the node misses the cache."""
    return ("unique", os.urandom(16))


def serialize(material: tuple[Any, ...], _dumps: Callable[[Any, int], bytes] = marshal.dumps) -> bytes:
    """Canonical material (atoms, bytes and tuples only; see canonical) as exact bytes.

    marshal format 0 is byte-for-byte deterministic for equal values: it writes no
    back-references and no "interned" flags, and it keeps int, float, bool and str apart (1,
    1.0 and True differ, so do 0.0 and -0.0), which tuple equality would not. The bytes are
    also a node's fingerprint: no container for the garbage collector to scan, and
    `deserialize` gives the material back to explain a re-run.
    """
    return _dumps(material, 0)


def deserialize(data: bytes) -> Any:
    """The material `serialize` wrote (only ever our own bytes, never input from outside)."""
    return marshal.loads(data)


class KeyTable:
    """Names serialised key material with small ints: exact, and cheap enough to run per node.

    Equal bytes get the same id, so there are no collisions to reason about, and consumers'
    material holds a small int rather than a digest.

    Ids are never reused, so forgetting material is always safe: its next occurrence just gets
    a new id and misses the cache. The table keeps two generations of `generation` entries
    each; material not seen for a whole generation is forgotten and `on_forget` gets its ids,
    so the cache can drop entries nobody can name any more. Lookups take no lock: the executor
    keys one prompt at a time, and a race could only give one material two ids (a miss).
    """

    def __init__(self, generation: int = 1 << 15,
                 on_forget: Callable[[Iterable[int]], None] | None = None) -> None:
        self.generation = generation
        self._on_forget = on_forget
        self._current: dict[bytes, int] = {}
        self._previous: dict[bytes, int] = {}
        self._ids = itertools.count(1)

    def key(self, data: bytes) -> int:
        """The id of serialised material (see serialize)."""
        found = self._current.get(data)
        if found is None:
            found = self._previous.pop(data, None)
            if found is None:
                found = next(self._ids)
            self._current[data] = found
            if len(self._current) >= self.generation:
                self._rotate()
        return found

    def _rotate(self) -> None:
        forgotten = self._previous
        self._previous, self._current = self._current, {}
        if forgotten and self._on_forget is not None:
            self._on_forget(forgotten.values())

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
