"""GET /lg/packs (also /api/lg/packs): how each custom node pack loaded, so a failing pack is named.

Per pack: ok, the nodes it registered, seconds spent importing, and its load problems (the
first line of each message; tracebacks stay in the server log).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.context import CONTEXT


def packs_status(runtime: Any) -> dict[str, Any]:
    packs: dict[str, Any] = {}
    problems = runtime.registry.problems
    for name, result in sorted(getattr(runtime, "custom_packs", {}).items()):
        source = result.get("source", f"custom_nodes/{name}")
        packs[name] = {"ok": bool(result.get("ok")), "nodes": list(result.get("nodes", ())),
                       "seconds": round(float(result.get("seconds", 0.0)), 3),
                       "problems": [p.message for p in problems if p.source == source]}
    settings = getattr(runtime, "settings", None)
    return {"enabled": not getattr(settings, "disable_all_custom_nodes", False), "packs": packs}


async def get_packs(request: web.Request) -> web.Response:
    return web.json_response(packs_status(request.app[CONTEXT].runtime))


ROUTES = [("GET", "/lg/packs", get_packs)]
