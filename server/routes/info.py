"""Read-only discovery routes: nodes, model files, system and feature information, extensions."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from aiohttp import web

from server.context import CONTEXT, ServerContext
from server.jsonsafe import json_response

APP_VERSION = "0.1.0"


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


async def object_info(request: web.Request) -> web.Response:
    info = await asyncio.to_thread(_ctx(request).registry.object_info)
    return json_response(info)


async def object_info_one(request: web.Request) -> web.Response:
    name = request.match_info["node_class"]
    registry = _ctx(request).registry
    if name not in registry:
        return json_response({})
    try:
        info = await asyncio.to_thread(registry.object_info_for, name)
    except Exception:  # a node whose INPUT_TYPES fails is left out, as in /object_info
        return json_response({})
    return json_response({name: info})


async def embeddings(request: web.Request) -> web.Response:
    names = _ctx(request).paths.get_filename_list("embeddings")
    return json_response([os.path.splitext(name)[0] for name in names])


async def model_folders(request: web.Request) -> web.Response:
    return json_response(_ctx(request).paths.folder_names())


async def model_files(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    try:
        names = await asyncio.to_thread(_ctx(request).paths.get_filename_list, folder)
    except KeyError:
        return json_response({"error": {"type": "unknown_folder",
                                            "message": f"Unknown model folder {folder!r}."}},
                                 status=404)
    return json_response(names)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _memory() -> tuple[int, int]:
    try:
        import psutil
        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        return 0, 0


def _devices(ctx: ServerContext) -> list[dict[str, Any]]:
    """The compute device in ComfyUI's shape; RAM figures stand in for VRAM on a CPU."""
    manager = ctx.runtime.services.model_manager  # None when the runtime has no models (tests)
    device = getattr(manager, "device", None)
    kind = str(getattr(device, "type", device or "cpu"))
    total, free = _memory()
    if kind == "cuda":
        try:
            import torch
            free, total = torch.cuda.mem_get_info(device)
        except Exception:
            pass
    torch_free = 0
    if manager is not None and hasattr(manager, "free_memory_bytes"):
        try:
            torch_free = int(manager.free_memory_bytes())
        except Exception:
            torch_free = 0
    return [{"name": str(device or "cpu"), "type": kind, "index": getattr(device, "index", 0) or 0,
             "vram_total": int(total), "vram_free": int(free), "torch_vram_total": int(total),
             "torch_vram_free": torch_free}]


async def system_stats(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    total, free = _memory()
    return json_response({
        "system": {"os": sys.platform, "platform": platform.platform(), "ram_total": total,
                   "ram_free": free, "comfyui_version": APP_VERSION,
                   "latentgraph_version": APP_VERSION, "required_frontend_version": "",
                   "python_version": sys.version, "pytorch_version": _version("torch"),
                   "embedded_python": False, "argv": ["main.py"]},
        "devices": _devices(ctx), "workers": ctx.workers()})


async def features(request: web.Request) -> web.Response:
    return json_response({"supports_preview_metadata": True,
                              "max_upload_size": _ctx(request).config.max_upload_bytes,
                              "latentgraph": {"job_control": True, "run_reports": True,
                                              "per_prompt_interrupt": True}})


def _extension_scripts(ctx: ServerContext) -> list[str]:
    urls = []
    for pack, directory in sorted(ctx.registry.web_directories.items()):
        root = Path(directory)
        if not root.is_dir():
            continue
        for script in sorted(root.rglob("*.js")):
            if any(part.startswith(".") for part in script.relative_to(root).parts):
                continue
            urls.append(f"/extensions/{pack}/{script.relative_to(root).as_posix()}")
    return urls


async def extensions(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_extension_scripts, _ctx(request)))


MAX_SAFETENSORS_HEADER = 1024 * 1024


def read_safetensors_metadata(path: Path) -> dict[str, Any] | None:
    """The `__metadata__` of a safetensors file, reading at most 1 MB of header."""
    import json
    import struct

    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            return None
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_SAFETENSORS_HEADER:
            return None
        try:
            header = json.loads(handle.read(length))
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


async def view_metadata(request: web.Request) -> web.Response:
    from engine.errors import PathEscapeError

    filename = request.query.get("filename", "")
    not_found = json_response({"error": {"type": "not_found",
                                             "message": "No safetensors metadata found."}},
                                  status=404)
    if not filename.endswith(".safetensors"):
        return not_found
    try:
        path = _ctx(request).paths.get_full_path(request.match_info["folder"], filename)
    except (KeyError, PathEscapeError):
        return not_found
    if path is None:
        return not_found
    metadata = await asyncio.to_thread(read_safetensors_metadata, path)
    return json_response(metadata) if metadata is not None else not_found


async def users(request: web.Request) -> web.Response:
    """Single-user mode, as ComfyUI answers without --multi-user."""
    return json_response({"storage": "server", "migrated": True})


ROUTES = [
    ("GET", "/object_info", object_info), ("GET", "/object_info/{node_class}", object_info_one),
    ("GET", "/embeddings", embeddings), ("GET", "/models", model_folders),
    ("GET", "/models/{folder}", model_files), ("GET", "/system_stats", system_stats),
    ("GET", "/features", features), ("GET", "/extensions", extensions), ("GET", "/users", users),
    ("GET", "/view_metadata/{folder}", view_metadata),
]
