"""/userdata, /v2/userdata and /settings: the canvas's saved workflows and settings on disk.

Everything lives under user/default/ (ComfyUI's single-user layout); the queue database sits in
user/ itself, outside this root, so no userdata route can read or overwrite it. Files are written
atomically (temp file + rename) so an autosave interrupted half-way never corrupts a workflow.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.errors import PathEscapeError
from engine.imagefiles import write_file_atomically
from engine.paths import contained_path
from server.context import CONTEXT, ServerContext
from server.jsonsafe import json_response
from server.requests import BadRequest, query_bool, read_body, read_json

MAX_USERDATA_BYTES = 32 * 1024 * 1024
SETTINGS_FILE = "comfy.settings.json"


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


def user_path(ctx: ServerContext, relative: str) -> Path:
    root = ctx.userdata_root
    root.mkdir(parents=True, exist_ok=True)
    try:
        return contained_path(root, relative)
    except PathEscapeError as exc:
        raise BadRequest("path_not_allowed", f"Path refused: {exc}", status=403) from None


def _relative(ctx: ServerContext, path: Path) -> str:
    return path.relative_to(ctx.userdata_root.resolve()).as_posix()


def _info(ctx: ServerContext, path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": _relative(ctx, path), "size": stat.st_size, "modified": stat.st_mtime}


def _file_param(request: web.Request, name: str = "file") -> str:
    value = request.match_info.get(name, "")
    if not value or value.endswith("/"):
        raise BadRequest("invalid_parameter", "A file path is required.", parameter=name)
    return value


# -- listings ----------------------------------------------------------------------------------
async def list_userdata(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    directory = user_path(ctx, request.query.get("dir", ""))
    if not directory.is_dir():
        raise BadRequest("not_found", "Directory not found.", status=404)
    recurse, full_info = query_bool(request, "recurse"), query_bool(request, "full_info")
    split = query_bool(request, "split")

    def listing() -> list[Any]:
        found = directory.rglob("*") if recurse else directory.iterdir()
        files = sorted(p for p in found if p.is_file() and not p.name.startswith(".")
                       and not p.is_symlink())
        result: list[Any] = []
        for path in files:
            rel = path.relative_to(directory).as_posix()
            if full_info:
                stat = path.stat()
                result.append({"path": rel, "size": stat.st_size, "modified": stat.st_mtime})
            elif split:
                result.append([rel, *rel.split("/")])
            else:
                result.append(rel)
        return result

    return json_response(await asyncio.to_thread(listing))


async def list_userdata_v2(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    directory = user_path(ctx, request.query.get("path", ""))
    if not directory.is_dir():
        raise BadRequest("not_found", "Directory not found.", status=404)
    entries = []
    for child in sorted(directory.iterdir()):
        if child.name.startswith(".") or child.is_symlink():
            continue
        stat = child.stat()
        entry: dict[str, Any] = {"name": child.name, "path": _relative(ctx, child),
                                 "type": "directory" if child.is_dir() else "file",
                                 "modified": stat.st_mtime}
        if child.is_file():
            entry["size"] = stat.st_size
        entries.append(entry)
    return json_response(entries)


# -- single files ------------------------------------------------------------------------------
async def get_userdata(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    path = user_path(ctx, _file_param(request))
    if not path.is_file():
        raise BadRequest("not_found", "No such file.", status=404)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if path.suffix.lower() == ".json":
        headers["Content-Type"] = "application/json"
    else:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    return web.FileResponse(path, headers=headers)


async def post_userdata(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    path = user_path(ctx, _file_param(request))
    if path == ctx.userdata_root.resolve() or path.is_dir():
        raise BadRequest("invalid_parameter", "That path is a directory.", status=400)
    overwrite = query_bool(request, "overwrite", default=True)
    if path.exists() and not overwrite:
        raise BadRequest("file_exists", "A file with that name already exists.", status=409)
    data = await read_body(request, MAX_USERDATA_BYTES)
    await asyncio.to_thread(write_file_atomically, path, data)
    if query_bool(request, "full_info"):
        return json_response(_info(ctx, path))
    return json_response(_relative(ctx, path))


async def delete_userdata(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    path = user_path(ctx, _file_param(request))
    if not path.is_file():
        raise BadRequest("not_found", "No such file.", status=404)
    path.unlink()
    return web.Response(status=204)


async def move_userdata(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    source = user_path(ctx, _file_param(request, "file"))
    dest = user_path(ctx, _file_param(request, "dest"))
    if not source.is_file():
        raise BadRequest("not_found", "No such file.", status=404)
    if dest.exists() and not query_bool(request, "overwrite", default=True):
        raise BadRequest("file_exists", "The destination already exists.", status=409)
    if dest.is_dir():
        raise BadRequest("invalid_parameter", "The destination is a directory.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, dest)
    if query_bool(request, "full_info"):
        return json_response(_info(ctx, dest))
    return json_response(_relative(ctx, dest))


# -- settings ----------------------------------------------------------------------------------
def _load_settings(ctx: ServerContext) -> dict[str, Any]:
    path = user_path(ctx, SETTINGS_FILE)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _save_settings(ctx: ServerContext, settings: dict[str, Any]) -> None:
    write_file_atomically(user_path(ctx, SETTINGS_FILE),
                 json.dumps(settings, indent=2, ensure_ascii=False).encode("utf-8"))


async def get_settings(request: web.Request) -> web.Response:
    return json_response(_load_settings(_ctx(request)))


async def post_settings(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("invalid_json", "Settings must be a JSON object.")
    settings = _load_settings(ctx)
    settings.update(body)
    _save_settings(ctx, settings)
    return web.Response(status=200)


async def get_setting(request: web.Request) -> web.Response:
    return json_response(_load_settings(_ctx(request)).get(request.match_info["id"]))


async def post_setting(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    value = await read_json(request)
    settings = _load_settings(ctx)
    settings[request.match_info["id"]] = value
    _save_settings(ctx, settings)
    return web.Response(status=200)


ROUTES = [
    ("GET", "/userdata", list_userdata), ("GET", "/v2/userdata", list_userdata_v2),
    ("POST", "/userdata/{file}/move/{dest}", move_userdata),
    ("GET", "/userdata/{file}", get_userdata), ("POST", "/userdata/{file}", post_userdata),
    ("DELETE", "/userdata/{file}", delete_userdata),
    ("GET", "/settings", get_settings), ("POST", "/settings", post_settings),
    ("GET", "/settings/{id}", get_setting), ("POST", "/settings/{id}", post_setting),
]
