"""Websocket clients and message routing: each prompt's events go only to the client that queued it.

Every connected client has an outbox drained by its own writer task, so a slow browser never
blocks the others or the worker. Text events are never dropped (a client that falls hopelessly
behind is disconnected and can catch up through /history); JPEG preview frames are dropped when a
client's outbox is backed up, since only the latest preview matters. PNG frames are never dropped:
they are results a node delivers over the socket (ComfyUI's SaveImageWebsocket), not previews. All methods run on the
event loop; the worker thread reaches them through `post()` (loop.call_soon_threadsafe).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from server.jsonsafe import dumps

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_IMAGE_TYPE_CODES = {"JPEG": 1, "PNG": 2}
_IMAGE_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_MAX_OUTBOX = 50_000          # text messages queued for one client before we give up on it
_MAX_PREVIEW_BACKLOG = 8      # drop previews once this many messages are waiting
LG_EVENTS_FLAG = "lg_events"  # the client feature flag that asks for `lg.*` events


def encode_preview(image_format: str, image: bytes) -> bytes:
    """ComfyUI binary event 1: event type, image type (1 JPEG, 2 PNG), image bytes."""
    code = _IMAGE_TYPE_CODES.get(image_format.upper(), 1)
    return struct.pack(">II", PREVIEW_IMAGE, code) + image


def encode_preview_with_metadata(metadata: dict[str, Any], image: bytes) -> bytes:
    """ComfyUI binary event 4: event type, JSON length, JSON metadata, image bytes."""
    blob = json.dumps(metadata, separators=(",", ":")).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(blob)) + blob + image


def image_mime(image_format: str) -> str:
    return _IMAGE_MIME.get(image_format.upper(), "image/jpeg")


@dataclass
class Client:
    """One websocket connection."""

    sid: str
    ws: web.WebSocketResponse
    feature_flags: dict[str, Any] = field(default_factory=dict)
    outbox: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None

    @property
    def wants_preview_metadata(self) -> bool:
        return bool(self.feature_flags.get("supports_preview_metadata"))

    @property
    def wants_lg_events(self) -> bool:
        """Our own `lg.*` events go only to clients that ask for them in their first
        `feature_flags` message (`"lg_events": true`): other clients such as the official
        ComfyUI frontend log every event type they do not know."""
        return bool(self.feature_flags.get(LG_EVENTS_FLAG))


class WebSocketHub:
    """Connected sockets by client id; send to one client (all its sockets), or broadcast.

    Several sockets may share a client id (a duplicated browser tab copies its id): all of them
    receive that client's events, instead of each new one kicking out the other (which makes
    two tabs reconnect in a loop, ComfyUI#549).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop  # set when the app starts
        self.clients: dict[str, list[Client]] = {}
        self._status_scheduled = False
        self.status_provider: Callable[[], dict[str, Any]] = lambda: {}

    # -- thread bridge -------------------------------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the event loop; safe from any thread, order-preserving."""
        if self.loop is None or self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop shutting down
            pass

    # -- connections -----------------------------------------------------------------------------
    def attach(self, sid: str, ws: web.WebSocketResponse) -> Client:
        client = Client(sid, ws)
        client.writer = asyncio.get_running_loop().create_task(self._write_loop(client))
        self.clients.setdefault(sid, []).append(client)
        return client

    def _forget(self, client: Client) -> None:
        sockets = self.clients.get(client.sid)
        if sockets and client in sockets:
            sockets.remove(client)
            if not sockets:
                del self.clients[client.sid]

    def detach(self, client: Client) -> None:
        self._forget(client)
        client.outbox.put_nowait(None)

    def _all(self) -> list[Client]:
        return [client for sockets in self.clients.values() for client in sockets]

    async def _write_loop(self, client: Client) -> None:
        try:
            while True:
                message = await client.outbox.get()
                if message is None or client.ws.closed:
                    break
                if isinstance(message, str):
                    await client.ws.send_str(message)
                else:
                    await client.ws.send_bytes(message)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self._forget(client)
            if not client.ws.closed:
                await client.ws.close()

    async def close_all(self) -> None:
        for client in self._all():
            client.outbox.put_nowait(None)
            await client.ws.close(code=1001, message=b"server shutting down")

    # -- sending --------------------------------------------------------------------------------
    def _enqueue(self, client: Client, message: str | bytes) -> None:
        if client.outbox.qsize() >= _MAX_OUTBOX:
            log.warning("websocket client %s is not reading; disconnecting it", client.sid)
            self.detach(client)
            return
        client.outbox.put_nowait(message)

    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """A text event to every socket of client `sid`, or to everyone when sid is None;
        `lg.*` events only to sockets that asked for them."""
        text = dumps({"type": event, "data": data}, separators=(",", ":"))
        targets = self._all() if sid is None else list(self.clients.get(sid, ()))
        ours = event.startswith("lg.")
        for client in targets:
            if not ours or client.wants_lg_events:
                self._enqueue(client, text)

    def send_preview(self, sid: str | None, prompt_id: str, node_id: str, image_format: str,
                     image: bytes) -> None:
        """A binary preview frame, in the layout each socket asked for (type 4 or type 1)."""
        if sid is None:
            return
        for client in list(self.clients.get(sid, ())):
            if image_format.upper() != "PNG" and client.outbox.qsize() > _MAX_PREVIEW_BACKLOG:
                continue  # a backed-up socket skips this preview; the next one supersedes it
            if client.wants_preview_metadata:
                metadata = {"node_id": node_id, "prompt_id": prompt_id,
                            "display_node_id": node_id, "parent_node_id": None,
                            "real_node_id": node_id, "image_type": image_mime(image_format)}
                frame = encode_preview_with_metadata(metadata, image)
            else:
                frame = encode_preview(image_format, image)
            self._enqueue(client, frame)  # bounded like text: a socket that never reads is dropped

    def status_changed(self) -> None:
        """Broadcast queue status; bursts of changes in one loop turn become one message."""
        if self._status_scheduled:
            return
        self._status_scheduled = True
        asyncio.get_running_loop().call_soon(self._broadcast_status)

    def _broadcast_status(self) -> None:
        self._status_scheduled = False
        self.send("status", {"status": self.status_provider()}, None)
