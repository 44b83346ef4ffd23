"""ComfyUI's `server.PromptServer` for node packs, one instance per runtime.

Packs use `PromptServer.instance` at import time: `@PromptServer.instance.routes.get("/my_pack/x")`
to add HTTP routes, `send_sync(event, data, sid)` to push websocket messages to the editor,
`add_on_prompt_handler(fn)` to see prompts. The instance lives in the loading runtime's
`Services.compat` (never a module global). Routes are only collected here; server.app adds them
to its aiohttp application after packs loaded, behind the same origin/token guards as ours.
`send_sync` goes through the server's websocket hub once a server has bound the instance; before
that (a CLI run, tests) messages are dropped.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Callable

from aiohttp import web

from engine import runtime

log = logging.getLogger(__name__)

_KEY = "prompt_server"


class BinaryEventTypes(enum.IntEnum):
    """ComfyUI's binary websocket frame types (server.BinaryEventTypes)."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


class _CurrentInstance:
    """`PromptServer.instance`: the current runtime's instance, created on first use."""

    def __get__(self, obj: Any, owner: type) -> "PromptServer":
        return instance_for(runtime.services())


class PromptServer:
    """The part of ComfyUI's PromptServer packs use; see the module docstring."""

    instance = _CurrentInstance()

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        # Packs also call `instance.app.add_routes([web.static(...)])` / `app.router.add_get(...)`:
        # a never-started application whose resources server.app moves into the real one.
        self.app = web.Application()
        self.client_id: str | None = None  # ComfyUI: the last client that connected
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.on_prompt_handlers: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.supports = ["custom_nodes_from_web"]
        self._send: Callable[[str, Any, str | None], None] | None = None

    def bind(self, send: Callable[[str, Any, str | None], None]) -> None:
        """Called by server.app: where send_sync's messages go."""
        self._send = send

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        if isinstance(event, int) or self._send is None:
            return  # binary frames from packs and messages with no server attached are dropped
        self._send(event, data, sid)

    def add_on_prompt_handler(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict[str, Any]) -> dict[str, Any]:
        """Run the packs' prompt handlers; one that raises is logged and skipped, as in ComfyUI."""
        for handler in self.on_prompt_handlers:
            try:
                json_data = handler(json_data)
            except Exception:
                log.exception("on_prompt handler %r of a node pack failed", handler)
        return json_data


def instance_for(services: runtime.Services) -> PromptServer:
    """The runtime's PromptServer (created on first use)."""
    found = services.compat.get(_KEY)
    if found is None:
        found = services.compat[_KEY] = PromptServer()
    return found
