"""Why a node ran: its cache-key material (its fingerprint) against the one the same node id had
in an earlier prompt, worded for the run report ("new", "input seed changed", ...)."""

from __future__ import annotations

from typing import Any, Mapping

from engine import cachekeys

FINGERPRINT_MEMORY = 20000  # node ids remembered; the oldest are forgotten first

_MISSING = object()


def remember(memory: dict[str, bytes], fingerprints: Mapping[str, bytes], limit: int = FINGERPRINT_MEMORY) -> None:
    """Record the fingerprints of the nodes a prompt ran or served, keeping the newest `limit` ids."""
    memory.update(fingerprints)
    excess = len(memory) - limit
    if excess > 0:
        for node_id in list(memory)[:excess]:  # insertion order: oldest first
            del memory[node_id]


def reason(before: bytes | None, now: bytes, forced: bool, cache_enabled: bool) -> str:
    """Why a node with fingerprint `now` ran, when its id last had `before` (None: never seen)."""
    if forced:
        return "forced"
    if before is None:
        return "new"
    if before == now:  # it would have been served from the cache
        return "evicted from cache" if cache_enabled else "cache disabled"
    before_class, _, before_changed, before_inputs = cachekeys.deserialize(before)
    now_class, _, now_changed, now_inputs = cachekeys.deserialize(now)
    if before_class != now_class:
        return "new"
    if before_changed != now_changed:
        return "IS_CHANGED changed"
    changed = _changed_inputs(dict(before_inputs), dict(now_inputs))
    if changed:
        return f"input {', '.join(changed)} changed"
    return "changed" if cache_enabled else "cache disabled"


def _changed_inputs(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    return [name for name in dict.fromkeys([*now, *before])
            if now.get(name, _MISSING) != before.get(name, _MISSING)]
