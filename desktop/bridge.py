"""What the editor page may ask of the desktop shell, as `window.pywebview.api.*` in the page.

Native dialogs replace the browser's file input and downloads in desktop mode, and the window
title follows the active workflow. The page can write only files the user chose in this session
(through a dialog, or by opening the file with the app): page scripts, node packs' front-end
extensions included, cannot write anywhere else through this bridge.
"""

from __future__ import annotations

import base64
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from engine.imagefiles import write_file_atomically

log = logging.getLogger("latentgraph.desktop")

MAX_OPEN_BYTES = 64 * 1024 * 1024
WORKFLOW_FILE_TYPES = ("Workflows (*.json;*.png)", "JSON workflows (*.json)",
                       "Images with a workflow (*.png)", "All files (*.*)")
SAVE_FILE_TYPES = ("JSON workflows (*.json)", "All files (*.*)")
OPEN, SAVE = 10, 30  # webview.FileDialog values (kept here so this module imports without pywebview)
FILES_ARRIVED_SCRIPT = "window.dispatchEvent(new Event('lg-desktop-files'))"


class NativeWindow(Protocol):
    """The part of pywebview's Window the bridge uses (a fake in tests)."""

    title: str

    def create_file_dialog(self, dialog_type: int = ..., directory: str = ...,
                           allow_multiple: bool = ..., save_filename: str = ...,
                           file_types: tuple[str, ...] = ...) -> Any: ...

    def evaluate_js(self, script: str) -> Any: ...


class DesktopBridge:
    """The js_api object: public methods are callable from the page, underscored state is not."""

    def __init__(self) -> None:
        self._window: NativeWindow | None = None
        self._lock = threading.Lock()
        self._pending: list[Path] = []
        self._writable: set[Path] = set()

    # -- the shell's side -----------------------------------------------------------------------
    def _attach(self, window: NativeWindow) -> None:
        self._window = window

    def _queue_files(self, paths: list[str]) -> None:
        """Files given on the command line or handed over by a later launch: the page pulls them."""
        with self._lock:
            self._pending.extend(Path(p).expanduser().resolve() for p in paths)
        if self._window is not None and paths:
            try:
                self._window.evaluate_js(FILES_ARRIVED_SCRIPT)
            except Exception:  # the page is not loaded yet: it pulls on start-up anyway
                log.debug("page not ready for new files; it will pull them when it starts")

    # -- the page's side ------------------------------------------------------------------------
    def set_title(self, title: str) -> None:
        """The window title: the page sends "● name — Latentgraph" when there are unsaved changes."""
        if self._window is not None:
            self._window.title = str(title)[:300]

    def take_files(self) -> list[dict[str, Any]]:
        """Files waiting to be opened, read: [{name, path, data (base64)} or {name, path, error}]."""
        with self._lock:
            paths, self._pending = self._pending, []
        return [self._read(path) for path in paths]

    def open_dialog(self) -> list[dict[str, Any]]:
        """The native Open dialog; the chosen files, read as `take_files` returns them."""
        chosen = self._dialog(OPEN, file_types=WORKFLOW_FILE_TYPES)
        return [self._read(Path(p)) for p in chosen or ()]

    def save_dialog(self, suggested_name: str, text: str) -> dict[str, str] | None:
        """The native Save dialog, then the file written there; None when cancelled."""
        chosen = self._dialog(SAVE, save_filename=Path(str(suggested_name)).name or "workflow.json",
                              file_types=SAVE_FILE_TYPES)
        if not chosen:
            return None
        path = Path(chosen if isinstance(chosen, str) else chosen[0]).expanduser().resolve()
        with self._lock:
            self._writable.add(path)
        return self.write_file(str(path), text)

    def write_file(self, path: str, text: str) -> dict[str, str]:
        """Write a file the user chose in this session (Save to the file a tab came from)."""
        target = Path(path).expanduser().resolve()
        with self._lock:
            allowed = target in self._writable
        if not allowed:
            raise PermissionError(f"{target} was not chosen by the user in this session")
        write_file_atomically(target, str(text).encode("utf-8"))
        return {"path": str(target), "name": target.name}

    # -- helpers --------------------------------------------------------------------------------
    def _dialog(self, kind: int, **options: Any) -> Any:
        if self._window is None:
            return None
        return self._window.create_file_dialog(kind, **options)

    def _read(self, path: Path) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": path.name, "path": str(path)}
        try:
            if path.stat().st_size > MAX_OPEN_BYTES:
                raise ValueError(f"larger than {MAX_OPEN_BYTES // (1024 * 1024)} MB")
            entry["data"] = base64.b64encode(path.read_bytes()).decode("ascii")
        except (OSError, ValueError) as exc:
            entry["error"] = str(exc)
            return entry
        if path.suffix.lower() == ".json":
            with self._lock:
                self._writable.add(path.resolve())
        return entry
