"""ExecutionBlocker: returned in place of an output to stop everything downstream of it."""

from __future__ import annotations


class ExecutionBlocker:
    """A value that blocks its consumers (ComfyUI semantics).

    A consumer that receives a blocker is not called; its outputs become the blocker too.
    A blocker with a message produces one `execution_error` event (exception_type
    "ExecutionBlocked") without stopping the prompt; `None` blocks silently.
    """

    __slots__ = ("message",)

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"
