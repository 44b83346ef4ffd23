"""A per-prompt cancel flag: the server sets it, the running node observes it at the next check."""

from __future__ import annotations

import threading


class InterruptFlag:
    """Thread-safe flag owned by one prompt (not a process-wide global, unlike ComfyUI's)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def __repr__(self) -> str:
        return f"InterruptFlag(set={self.is_set()})"
