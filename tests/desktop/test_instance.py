"""One desktop app per user folder: hand-over of files, stale sockets, racing launches."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from desktop.instance import claim, hand_over, socket_path


@pytest.fixture()
def sock_path(tmp_path):
    runtime = Path(tempfile.mkdtemp(prefix="lg"))  # short: socket paths are limited to ~100 bytes
    yield socket_path(tmp_path / "user", runtime)
    shutil.rmtree(runtime)


def test_second_launch_hands_its_files_to_the_first(sock_path):
    received: list[list[str]] = []
    arrived = threading.Event()

    def on_files(files: list[str]) -> None:
        received.append(files)
        arrived.set()

    first = claim(sock_path, [], on_files)
    assert first is not None
    try:
        assert claim(sock_path, ["/tmp/a.json", "/tmp/b.png"], on_files) is None
        assert arrived.wait(5)
        assert received == [["/tmp/a.json", "/tmp/b.png"]]
        assert oct(sock_path.stat().st_mode & 0o777) == oct(0o600)
    finally:
        first.close()
    assert not sock_path.exists()


def test_a_socket_left_by_a_dead_launch_is_replaced(sock_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()  # the file stays, nobody listens: what a crashed launch leaves behind
    assert sock_path.exists() and not hand_over(sock_path, [])
    listener = claim(sock_path, [], lambda files: None)
    try:
        assert listener is not None
        assert hand_over(sock_path, [])
    finally:
        listener.close()


def test_a_malformed_message_is_refused_and_the_listener_goes_on(sock_path):
    got: list[list[str]] = []
    listener = claim(sock_path, [], got.append)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(sock_path))
            conn.sendall(b'{"files": "not a list"}\n')
            assert conn.recv(16) == b"error\n"
        assert hand_over(sock_path, ["/x.json"])
        assert got == [["/x.json"]]
    finally:
        listener.close()


def test_racing_launches_end_with_exactly_one_instance(sock_path):
    results: list[object] = []
    lock = threading.Lock()

    def launch() -> None:
        outcome = claim(sock_path, [], lambda files: None)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=launch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    listeners = [r for r in results if r is not None]
    try:
        assert len(results) == 6 and len(listeners) == 1
    finally:
        for listener in listeners:
            listener.close()
