"""The editor (web/dist) at /, and custom node packs' WEB_DIRECTORY files at /extensions/.

When web/dist has not been built, / answers with a short page that says how to build it, so a
user who ran the server straight from a checkout is not left with a bare 404.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path

from aiohttp import web

from engine.errors import PathEscapeError
from engine.paths import contained_path
from server.context import CONTEXT
from server.requests import BadRequest

DEFAULT_WEB_ROOT = Path(__file__).resolve().parents[2] / "web" / "dist"
_SCRIPT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
                 ".json": "application/json", ".html": "text/html", ".svg": "image/svg+xml",
                 ".wasm": "application/wasm"}

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Latentgraph</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42em;margin:4em auto;padding:0 1em}}
code{{background:#eee;padding:.1em .3em}}</style></head>
<body><h1>Latentgraph server is running</h1>
<p>The browser editor has not been built, so there is nothing to show here yet.
Build it with <code>make run</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>),
then reload this page.</p>
<p>The HTTP and websocket API is available now: try <a href="/system_stats">/system_stats</a>,
<a href="/object_info">/object_info</a> or <a href="/queue">/queue</a>.
Expected editor files in: <code>{root}</code></p></body></html>
"""


def _file_response(path: Path) -> web.FileResponse:
    mime = _SCRIPT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"
    cache = "no-cache" if path.suffix.lower() in (".html", ".js", ".css", ".json") \
        else "public, max-age=3600"
    return web.FileResponse(path, headers={"Content-Type": mime, "Cache-Control": cache})


async def web_root(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    root = ctx.config.web_root or DEFAULT_WEB_ROOT
    relative = request.match_info.get("path", "") or "index.html"
    index = root / "index.html"
    if not index.is_file():
        if relative in ("index.html", ""):
            return web.Response(text=PLACEHOLDER.format(root=html.escape(str(root))),
                                content_type="text/html", headers={"Cache-Control": "no-cache"})
        raise BadRequest("not_found", "Not found.", status=404)
    try:
        path = contained_path(root, relative)
    except PathEscapeError:
        raise BadRequest("path_not_allowed", "Path refused.", status=403) from None
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        raise BadRequest("not_found", "Not found.", status=404)
    return _file_response(path)


async def extension_file(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    root = ctx.registry.web_directories.get(request.match_info["pack"])
    if root is None:
        raise BadRequest("not_found", "No such extension.", status=404)
    try:
        path = contained_path(root, request.match_info["path"])
    except PathEscapeError:
        raise BadRequest("path_not_allowed", "Path refused.", status=403) from None
    if not path.is_file():
        raise BadRequest("not_found", "Not found.", status=404)
    return _file_response(path)


# Registered last and without the /api prefix: they must not shadow API routes.
STATIC_ROUTES = [("GET", "/extensions/{pack}/{path:.+}", extension_file),
                 ("GET", "/{path:.*}", web_root)]
