"""One desktop app per user folder: a second launch hands its files to the first one and exits.

The first launch listens on a Unix socket in a folder only this user can enter (XDG_RUNTIME_DIR,
else a 0700 folder in the temp dir). A later launch connects, sends one JSON line
`{"files": [...]}` and exits when the first answers `ok`; the first window then comes to the
front and opens the files in new tabs. A lock file serialises two launches racing each other,
and a socket left by a crashed launch (nobody answers) is replaced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable

log = logging.getLogger("latentgraph.desktop")

MAX_MESSAGE_BYTES = 1 << 16
REPLY_TIMEOUT_S = 5.0


def private_runtime_dir() -> Path:
    """A folder only this user can enter, for the socket and its lock."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir() and os.access(runtime, os.W_OK):
        return Path(runtime)
    folder = Path(tempfile.gettempdir()) / f"latentgraph-desktop-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private folder of this user; remove it")
    return folder


def socket_path(user_directory: Path, runtime_dir: Path | None = None) -> Path:
    """The socket for one user folder (short: Unix socket paths are limited to ~100 bytes)."""
    digest = hashlib.sha256(str(user_directory.resolve()).encode()).hexdigest()[:12]
    return (runtime_dir or private_runtime_dir()) / f"latentgraph-{digest}.sock"


def hand_over(path: Path, files: list[str]) -> bool:
    """Give `files` to the running instance at `path`; False when nobody answers there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(REPLY_TIMEOUT_S)
            conn.connect(str(path))
            conn.sendall(json.dumps({"files": files}).encode() + b"\n")
            return conn.recv(16).startswith(b"ok")
    except (FileNotFoundError, ConnectionRefusedError, socket.timeout, OSError):
        return False


class InstanceListener:
    """The first launch's end: accepts hand-overs and passes their files to `on_files`."""

    def __init__(self, sock: socket.socket, path: Path, on_files: Callable[[list[str]], None]):
        self._sock, self.path, self._on_files = sock, path, on_files
        self._thread = threading.Thread(target=self._serve, name="latentgraph-instance",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with conn:
                try:
                    self._answer(conn)
                except Exception:  # one bad hand-over must not stop the next ones
                    log.exception("ignored a bad message from another launch")

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(REPLY_TIMEOUT_S)
        data = b""
        while b"\n" not in data and len(data) < MAX_MESSAGE_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        message = json.loads(data.split(b"\n", 1)[0] or b"{}")
        files = message.get("files") if isinstance(message, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            conn.sendall(b"error\n")
            return
        self._on_files(files)
        conn.sendall(b"ok\n")

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            self.path.unlink(missing_ok=True)


def claim(path: Path, files: list[str],
          on_files: Callable[[list[str]], None]) -> InstanceListener | None:
    """Become the running instance, or hand `files` to the one already running (returns None)."""
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if hand_over(path, files):
            return None
        path.unlink(missing_ok=True)  # left by a launch that died: nobody answered on it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        sock.listen(8)
        return InstanceListener(sock, path, on_files)
