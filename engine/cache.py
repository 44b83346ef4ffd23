"""The output cache: node results keyed by structural signature, kept across prompts.

Entries are evicted least-recently-used first when their total byte size exceeds the RAM
budget. What several entries hold (a tensor storage, a model, the network behind clones of a
model handle: see engine.sizing) counts once, for as long as any entry holds it. A disabled
cache (--cache-none) stores nothing; the executor still keeps each prompt's own results alive
while that prompt runs, so a prompt never depends on what the cache keeps.

Rule for node authors: a value taken from the cache (any input a node receives) is shared and
must never be mutated in place; clone it first. `--debug-mutation-check` catches violations.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from engine.cachekeys import KeyTable
from engine.sizing import Seen, value_nbytes


@dataclass(slots=True)
class CacheEntry:
    outputs: list[list[Any]]  # one list of values per output slot (ComfyUI list semantics)
    ui: dict[str, Any] | None
    own_bytes: int  # its containers and plain values: held by no other entry
    parts: dict[Hashable, int] | None = None  # what other entries may hold too, with its bytes

    @property
    def size(self) -> int:
        """Its bytes, as if it were the only entry."""
        return self.own_bytes + (sum(self.parts.values()) if self.parts else 0)


def _forget_in(cache_ref: weakref.ref[OutputCache]) -> Callable[[Iterable[int]], None]:
    """The key table's callback into its cache, through a weak reference: a bound method would
    make cache and table a reference cycle, so a dropped cache (and every value in it) would
    wait for the cyclic garbage collector instead of being freed at once."""
    def forget(keys: Iterable[int]) -> None:
        cache = cache_ref()
        if cache is not None:
            cache._forget(keys)

    return forget


class OutputCache:
    """LRU mapping key -> CacheEntry under a byte budget (None = unbounded).

    Keys are the ids that this cache's KeyTable (`keys`) gives to node material: they mean
    something only to the cache that issued them.
    """

    def __init__(self, budget_bytes: int | None = None, enabled: bool = True) -> None:
        self.budget_bytes = budget_bytes
        self.enabled = enabled
        self._entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self._total = 0
        self._parts: dict[Hashable, list[int]] = {}  # part key -> [entries holding it, bytes]
        self._lock = threading.Lock()
        self.keys = KeyTable(on_forget=_forget_in(weakref.ref(self)))
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: int) -> CacheEntry | None:
        """The entry for `key`, marked most recently used; None on a miss."""
        if not self.enabled:
            return None
        entry = self._entries.get(key)  # one atomic read: a miss (every node of a new graph) takes no lock
        if entry is None:
            self.misses += 1
            return None
        with self._lock:
            if key in self._entries:  # evicted meanwhile: the caller still holds the value
                self._entries.move_to_end(key)
            self.hits += 1
        return entry

    def __contains__(self, key: int) -> bool:
        return self.enabled and key in self._entries

    def put(self, key: int, outputs: list[list[Any]], ui: dict[str, Any] | None) -> CacheEntry:
        """Store a node's result; evicts older entries to stay under the budget."""
        seen: Seen = {}
        size = value_nbytes(outputs, seen) + (value_nbytes(ui, seen) if ui else 0)
        if seen and max(seen.values()):  # it holds tensors or models, which other entries may share
            parts = {part: nbytes for part, nbytes in seen.items() if nbytes}
            entry = CacheEntry(outputs, ui, size - sum(parts.values()), parts)
        else:
            entry = CacheEntry(outputs, ui, size)
        if not self.enabled:
            return entry
        budget = self.budget_bytes
        if budget is not None and entry.size > budget:
            return entry  # larger than the whole budget: caching it would only evict everything
        with self._lock:
            entries = self._entries
            previous = entries.pop(key, None)
            if previous is not None:
                self._release(previous)
            entries[key] = entry
            self._total += entry.own_bytes
            if entry.parts:
                self._hold(entry.parts)
            if budget is not None and self._total > budget:
                self._evict_locked()
        return entry

    def _hold(self, parts: dict[Hashable, int]) -> None:
        """Count a new entry's parts: the bytes of each that no other entry holds yet."""
        held = self._parts
        for part, nbytes in parts.items():
            record = held.get(part)
            if record is None:
                held[part] = [1, nbytes]
                self._total += nbytes
            else:
                record[0] += 1

    def _release(self, entry: CacheEntry) -> None:
        """Uncount a removed entry: its own bytes, and each part it was the last to hold."""
        self._total -= entry.own_bytes
        if entry.parts:
            held = self._parts
            for part in entry.parts:
                record = held[part]
                record[0] -= 1
                if record[0] == 0:
                    del held[part]
                    self._total -= record[1]

    def _forget(self, keys: Iterable[int]) -> None:
        """The key table forgot these keys: nobody can look their entries up any more."""
        with self._lock:
            entries = self._entries
            for key in keys:
                entry = entries.pop(key, None)
                if entry is not None:
                    self._release(entry)

    def _evict_locked(self) -> None:
        if self.budget_bytes is None:
            return
        while self._total > self.budget_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._release(old)
            self.evictions += 1

    def discard(self, key: int) -> None:
        """Drop one entry (e.g. a value a node was caught mutating)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._release(entry)

    def set_budget(self, budget_bytes: int | None) -> None:
        with self._lock:
            self.budget_bytes = budget_bytes
            self._evict_locked()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._parts.clear()
            self._total = 0

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self._total, "budget_bytes": self.budget_bytes,
                "enabled": self.enabled, "hits": self.hits, "misses": self.misses,
                "evictions": self.evictions}
