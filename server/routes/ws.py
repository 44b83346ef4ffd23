"""GET /ws: the websocket every client opens to follow its prompts.

On connect the client gets `status` with its `sid`; if its prompt is running it also gets the
current `executing` node and the latest `progress_state`, so a reloaded page picks up where it
was. The only message read from
the client is an optional first `feature_flags` message (e.g. `supports_preview_metadata`),
answered with the server's own flags.
"""

from __future__ import annotations

import json
import re
import uuid

from aiohttp import WSMsgType, web

from server.context import CONTEXT

_SID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
SERVER_FEATURES = {"supports_preview_metadata": True}


async def websocket(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    requested = request.query.get("clientId", "")
    sid = requested if _SID.match(requested) else uuid.uuid4().hex
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1024 * 1024)
    await ws.prepare(request)
    client = ctx.hub.attach(sid, ws)
    ctx.hub.send("status", {"status": ctx.status(), "sid": sid}, sid)
    running = ctx.queue.running()
    if running is not None and running.client_id == sid and running.current_node is not None:
        ctx.hub.send("executing", {"node": running.current_node, "display_node":
                                   running.current_node, "prompt_id": running.prompt_id}, sid)
        if running.progress_state is not None:
            ctx.hub.send("progress_state", running.progress_state, sid)
    first = True
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            if first:
                first = False
                try:
                    parsed = json.loads(message.data)
                except ValueError:
                    continue
                if isinstance(parsed, dict) and parsed.get("type") == "feature_flags" \
                        and isinstance(parsed.get("data"), dict):
                    client.feature_flags = parsed["data"]
                    ctx.hub.send("feature_flags", dict(SERVER_FEATURES), sid)
    finally:
        ctx.hub.detach(client)
    return ws


ROUTES = [("GET", "/ws", websocket)]
