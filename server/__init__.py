"""The HTTP/websocket front door (server.app). Node packs written for ComfyUI import this package
as ComfyUI's `server` module for `PromptServer` and `BinaryEventTypes`; those names are answered
lazily by compat.prompt_server, so importing `server` stays free of side effects."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("PromptServer", "BinaryEventTypes"):
        import compat.prompt_server as adapter

        return getattr(adapter, name)
    raise AttributeError(f"module 'server' has no attribute {name!r}")
