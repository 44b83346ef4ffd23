"""Socket type matching: type names are strings, "*" matches anything, "A,B" is a union."""

from __future__ import annotations

from functools import lru_cache

ANY = "*"


@lru_cache(maxsize=4096)
def _split(type_name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in type_name.split(","))


def types_compatible(received: str, expected: str) -> bool:
    """True when an output of type `received` may feed an input of type `expected`.

    Same rule as ComfyUI's non-strict check: equal names, a "*" on either side, or two
    comma-separated unions that share at least one member.
    """
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got, want = _split(received), _split(expected)
    if ANY in got or ANY in want:
        return True
    return not got.isdisjoint(want)
