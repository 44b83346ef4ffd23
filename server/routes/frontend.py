"""Routes the official ComfyUI frontend reads at start-up besides the core API: translations of
custom node packs, global subgraphs, the model folders on disk and the model browser lists.

- GET /i18n                     {lang: {...main.json, nodeDefs, commands, settings}} merged from
                                custom_nodes/*/locales/<lang>/
- GET /global_subgraphs         {} (we ship no blueprint subgraphs)
- GET /workflow_templates       {pack: [workflow names]} from custom_nodes/*/example_workflows/
- GET /workflow_templates/{pack}/{file}  one of those files
- GET /internal/folder_paths    {folder key: [directories searched]}
- GET /experiment/models        [{name: folder key, folders: [directories]}]
- GET /experiment/models/{key}  [{name, pathIndex, modified, created, size}] for every model file
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from server.context import CONTEXT, ServerContext
from server.jsonsafe import json_response

log = logging.getLogger(__name__)

LOCALE_EXTRA_FILES = ("nodeDefs", "commands", "settings")
MAX_LOCALE_FILE = 8 * 1024 * 1024
HIDDEN_FROM_MODEL_BROWSER = frozenset({"configs"})
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


def _read_json_object(path: Path) -> dict[str, Any]:
    """A pack's locale file, or {} when it is missing, too large or not a JSON object."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_LOCALE_FILE:
            return {}
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("ignoring unreadable locale file %s: %s", path, exc)
        return {}
    return value if isinstance(value, dict) else {}


def merge_dicts(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested objects merge key by key, anything else from `other` wins."""
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_dicts(into[key], value)
        else:
            into[key] = value
    return into


def pack_translations(custom_nodes: Path) -> dict[str, dict[str, Any]]:
    """Every pack's `locales/<lang>/main.json` (+ nodeDefs/commands/settings.json), by language."""
    translations: dict[str, dict[str, Any]] = {}
    if not custom_nodes.is_dir():
        return translations
    for pack in sorted(custom_nodes.iterdir()):
        locales = pack / "locales"
        if pack.name.startswith(".") or not locales.is_dir():
            continue
        for lang_dir in sorted(p for p in locales.iterdir() if p.is_dir()):
            entry = _read_json_object(lang_dir / "main.json")
            for name in LOCALE_EXTRA_FILES:
                extra = _read_json_object(lang_dir / f"{name}.json")
                if extra:
                    entry[name] = extra
            merge_dicts(translations.setdefault(lang_dir.name, {}), entry)
    return translations


async def i18n(request: web.Request) -> web.Response:
    paths = _ctx(request).paths
    return json_response(await asyncio.to_thread(pack_translations, paths.custom_nodes_directory))


async def global_subgraphs(request: web.Request) -> web.Response:
    return json_response({})


def pack_workflow_templates(custom_nodes: Path) -> dict[str, list[str]]:
    """Example workflows packs ship, by pack folder name (ComfyUI's folder names)."""
    templates: dict[str, list[str]] = {}
    if not custom_nodes.is_dir():
        return templates
    for pack in sorted(p for p in custom_nodes.iterdir() if p.is_dir()):
        for folder in TEMPLATE_FOLDERS:
            for file in sorted((pack / folder).glob("*.json")):
                templates.setdefault(pack.name, []).append(file.stem)
    return templates


async def workflow_templates(request: web.Request) -> web.Response:
    paths = _ctx(request).paths
    return json_response(await asyncio.to_thread(pack_workflow_templates,
                                                 paths.custom_nodes_directory))


async def workflow_template_file(request: web.Request) -> web.StreamResponse:
    """A pack's example workflow; names are contained in the pack's template folder."""
    from engine.errors import PathEscapeError
    from engine.paths import contained_path

    root = _ctx(request).paths.custom_nodes_directory
    for folder in TEMPLATE_FOLDERS:
        try:
            path = contained_path(root, request.match_info["pack"], folder,
                                  request.match_info["file"])
        except PathEscapeError:
            break
        if path.is_file() and path.suffix.lower() == ".json":
            return web.FileResponse(path, headers={"Content-Type": "application/json"})
    return json_response({"error": {"type": "not_found", "message": "No such workflow template."}},
                         status=404)


async def folder_paths(request: web.Request) -> web.Response:
    paths = _ctx(request).paths
    return json_response({key: [str(p) for p in paths.get_folder_paths(key)]
                          for key in paths.folder_names()})


async def model_folders(request: web.Request) -> web.Response:
    paths = _ctx(request).paths
    return json_response([{"name": key, "folders": [str(p) for p in paths.get_folder_paths(key)]}
                          for key in paths.folder_names() if key not in HIDDEN_FROM_MODEL_BROWSER])


def _file_info(paths: Any, folder: str) -> list[dict[str, Any]]:
    """The model browser's entries: the names the loader combos offer, with the index of the
    directory each was found in (as /internal/folder_paths lists them) and its file times."""
    roots = paths.get_folder_paths(folder)
    entries = []
    for name in paths.get_filename_list(folder):
        for index, root in enumerate(roots):
            full = root / name
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append({"name": name, "pathIndex": index, "modified": stat.st_mtime,
                            "created": stat.st_ctime, "size": stat.st_size})
            break
    return entries


async def model_files(request: web.Request) -> web.Response:
    paths = _ctx(request).paths
    folder = request.match_info["folder"]
    try:
        entries = await asyncio.to_thread(_file_info, paths, folder)
    except KeyError:
        return json_response({"error": {"type": "unknown_folder",
                                        "message": f"Unknown model folder {folder!r}."}},
                             status=404)
    return json_response(entries)


ROUTES = [
    ("GET", "/i18n", i18n), ("GET", "/global_subgraphs", global_subgraphs),
    ("GET", "/workflow_templates", workflow_templates),
    ("GET", "/workflow_templates/{pack}/{file:.+}", workflow_template_file),
    ("GET", "/internal/folder_paths", folder_paths),
    ("GET", "/experiment/models", model_folders),
    ("GET", "/experiment/models/{folder}", model_files),
]
