"""Filling a registry from node modules: built-in `nodes/*` modules and `custom_nodes/*` packs.

A module that fails to import, or a pack whose node name collides with one already registered,
is reported as a LoadProblem on the registry and skipped; start-up carries on.
Called only from the composition root (app.bootstrap), never at import time.
"""

from __future__ import annotations

import builtins
import contextvars
import hashlib
import importlib
import importlib.util
import logging
import pkgutil
import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from engine import pip_guard
from engine.errors import PathEscapeError
from engine.paths import contained_path
from engine.registry import NodeRegistry

log = logging.getLogger(__name__)

# Thin ComfyUI modules (folder_paths, comfy.utils, ...) that packs import at import time.
COMFYUI_COMPAT_DIRECTORY = Path(__file__).resolve().parents[1] / "compat" / "comfyui"


def load_package_modules(registry: NodeRegistry, package: ModuleType) -> list[str]:
    """Import every submodule of `package` that exports NODE_CLASS_MAPPINGS and register it."""
    loaded = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module_name = f"{package.__name__}.{info.name}"
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # one broken module must not take the others down
            registry.report_problem(module_name, f"import failed: {type(exc).__name__}: {exc}",
                                    traceback.format_exc())
            continue
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is None:
            continue
        if not isinstance(mappings, dict):
            registry.report_problem(module_name, "NODE_CLASS_MAPPINGS is not a dict")
            continue
        registry.register_mappings(mappings, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None), module_name)
        registry.aliases.update(getattr(module, "NODE_ALIASES", None) or {})
        loaded.append(module_name)
    return loaded


def _pack_entries(directory: Path) -> list[Path]:
    entries = []
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith((".", "_")) or name.endswith(".disabled") or name == "__pycache__":
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            entries.append(entry)
        elif entry.is_file() and entry.suffix == ".py":
            entries.append(entry)
    return entries


def _import_pack(entry: Path) -> ModuleType:
    """Import a pack from its path under a private, path-unique module name."""
    stem = entry.stem if entry.is_file() else entry.name
    unique = hashlib.sha1(str(entry.resolve()).encode()).hexdigest()[:10]
    module_name = f"_lg_custom_nodes_{unique}_{''.join(c if c.isalnum() else '_' for c in stem)}"
    if entry.is_dir():
        spec = importlib.util.spec_from_file_location(module_name, entry / "__init__.py",
                                                      submodule_search_locations=[str(entry)])
    else:
        spec = importlib.util.spec_from_file_location(module_name, entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry}")
    module = importlib.util.module_from_spec(spec)
    for stale in [m for m in sys.modules if m == module_name or m.startswith(module_name + ".")]:
        del sys.modules[stale]  # a fresh runtime re-imports the pack from disk
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


DEFAULT_IMPORT_TIMEOUT = 30.0  # seconds one pack may spend importing before it is marked failed


class PackImportTimeout(Exception):
    """A pack's import did not finish in time (its thread keeps running; Python cannot stop it)."""


def _import_pack_isolated(entry: Path, timeout: float) -> ModuleType:
    """Import a pack on a daemon thread (same context) and wait at most `timeout` seconds.

    Any exception, SystemExit included, is re-raised here; a hang raises PackImportTimeout and
    start-up goes on while the thread stays blocked in the pack's code.
    """
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["module"] = context.run(_import_pack, entry)
        except BaseException as exc:  # handed to the loading thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"import {entry.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise PackImportTimeout(f"import did not finish within {timeout:g} s; marked failed "
                                "(the pack's import keeps running in the background)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["module"]


def _restore_builtins(snapshot: dict[str, Any]) -> list[str]:
    """Undo changes a pack made to the builtins module; returns the names it touched."""
    current = vars(builtins)
    changed = sorted(name for name in set(snapshot) | set(current)
                     if name not in snapshot or name not in current or current[name] is not snapshot[name])
    for name in changed:
        if name in snapshot:
            current[name] = snapshot[name]
        else:
            del current[name]
    return changed


def enable_comfyui_compat() -> Path:
    """Make `import folder_paths`, `import comfy.utils`, ... resolve to compat/comfyui.

    Start-up step run right before packs load (never at import). Idempotent. The directory goes
    first on sys.path so an unrelated installed distribution named `comfy` cannot shadow it; its
    module names never clash with ours (no `nodes` or `server` there).
    """
    entry = str(COMFYUI_COMPAT_DIRECTORY)
    if entry not in sys.path:
        sys.path.insert(0, entry)
    return COMFYUI_COMPAT_DIRECTORY


_COMFYUI_MODULE_ROOTS = frozenset({"comfy", "comfy_execution", "comfy_extras", "comfy_api", "folder_paths",
                                   "node_helpers", "latent_preview", "server", "nodes", "execution"})


def _compat_hint(exc: BaseException) -> str:
    """A pointer to the supported list when a pack wanted a ComfyUI module or name we lack."""
    name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if name and name.split(".")[0] in _COMFYUI_MODULE_ROOTS:
        return (" (a ComfyUI module or name Latentgraph does not provide; "
                "see custom_nodes/README.md, 'Packs written for ComfyUI')")
    return ""


def load_custom_node_packs(registry: NodeRegistry, directory: Path, *, comfyui_compat: bool = True,
                           import_timeout: float = DEFAULT_IMPORT_TIMEOUT) -> dict[str, dict[str, Any]]:
    """Load every pack in `directory` (ComfyUI layout); returns a per-pack summary.

    A pack is a package directory or a single .py file exporting NODE_CLASS_MAPPINGS (and
    optionally NODE_DISPLAY_NAME_MAPPINGS and WEB_DIRECTORY). Names ending in `.disabled`
    are skipped. Packs load in name order, so results never depend on the filesystem.
    With `comfyui_compat` (default) the ComfyUI module adapters become importable first.
    Each import is isolated as far as a shared process allows: it runs under `import_timeout`,
    exceptions (SystemExit too) fail only that pack, builtins it replaced are restored, and
    `pip install` attempts are refused (engine.pip_guard); each is reported as a problem.
    """
    summary: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return summary
    entries = _pack_entries(directory)
    if comfyui_compat and entries:
        enable_comfyui_compat()
    if entries:
        pip_guard.install()
    for entry in entries:
        pack = entry.stem if entry.is_file() else entry.name
        source = f"custom_nodes/{entry.name}"
        started = time.perf_counter()
        problems_before = len(registry.problems)
        log.info("loading pack %s (%s)", pack, entry)
        snapshot = dict(vars(builtins))
        refused: list[str] = []
        token = pip_guard.refusals.set(refused)
        try:
            module = _import_pack_isolated(entry, import_timeout)
        except BaseException as exc:  # includes SystemExit from a badly written pack
            if isinstance(exc, KeyboardInterrupt):
                raise
            registry.report_problem(source, f"import failed: {type(exc).__name__}: {exc}{_compat_hint(exc)}",
                                    "".join(traceback.format_exception(exc)))
            module = None
        finally:
            pip_guard.refusals.reset(token)
            touched = _restore_builtins(snapshot)
        if touched:
            registry.report_problem(source, f"pack changed Python builtins {', '.join(touched)}; restored")
        if refused:
            registry.report_problem(source, f"pip install at run time refused: {'; '.join(refused)}")
        if module is None:
            summary[pack] = {"source": source, "ok": False, "nodes": [], "seconds": time.perf_counter() - started}
            continue
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        display_names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None)
        if mappings is None and callable(getattr(module, "comfy_entrypoint", None)) and comfyui_compat:
            try:  # a V3 pack: its extension lists the node classes
                from comfy_api.latest import entrypoint_mappings

                mappings, display_names = entrypoint_mappings(module.comfy_entrypoint)
            except Exception as exc:
                registry.report_problem(source, f"comfy_entrypoint failed: {type(exc).__name__}: {exc}",
                                        traceback.format_exc())
                mappings = {}
        nodes: list[str] = []
        if not isinstance(mappings, dict):
            registry.report_problem(source, "pack exports no NODE_CLASS_MAPPINGS dict; skipped")
        else:
            nodes = registry.register_mappings(mappings, display_names, f"custom_nodes.{pack}", source)
        web = getattr(module, "WEB_DIRECTORY", None)
        if isinstance(web, str) and entry.is_dir():
            try:
                web_dir = contained_path(entry, web)
            except PathEscapeError as exc:
                registry.report_problem(source, f"WEB_DIRECTORY rejected: {exc}")
            else:
                if web_dir.is_dir():
                    registry.web_directories[pack] = web_dir
        summary[pack] = {"source": source, "ok": len(registry.problems) == problems_before, "nodes": nodes,
                         "seconds": time.perf_counter() - started}
    return summary
