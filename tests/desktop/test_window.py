"""`main.py --desktop` for real, under Xvfb: the window shows the editor, the launch token works
for the API, closing the window (as a window manager does: WM_DELETE_WINDOW) stops the server,
the running job is recorded as interrupted and the queue file is intact.

Skipped with the reason where Xvfb, pywebview with a GTK/Qt web view, python-xlib or the built
editor is missing (`make test` installs them on Debian).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "screenshots" / "desktop_window.png"
CANVAS_BACKGROUND = (0x16, 0x18, 0x1D)  # web/src/editor/theme.ts THEME.background
URL_LINE = re.compile(r"running at (http://127\.0\.0\.1:(\d+)/)\?token=(\S+)")


def _require_display_stack() -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb)")
    if not (REPO / "web" / "dist" / "app.js").exists():
        pytest.skip("web editor not built (make web)")
    pytest.importorskip("Xlib", reason="python-xlib is not installed")
    probe = subprocess.run([sys.executable, "-c", "from desktop.app import import_webview;"
                            "import sys; w = import_webview(); sys.exit(0 if w else 3)"],
                           cwd=REPO, capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("pywebview or its GTK web view (python3-gi, gir1.2-webkit2-4.1) is missing")


@pytest.fixture()
def display():
    _require_display_stack()
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    try:
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(10)


def _api(base: str, token: str, path: str, body: object | None = None) -> object:
    request = urllib.request.Request(base + path.lstrip("/"), method="POST" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path}: {exc.code} {exc.read()[:2000]!r}") from exc


def _find_window(disp, title_part: str):
    for child in disp.screen().root.query_tree().children:
        stack = [child]
        while stack:
            win = stack.pop()
            name = win.get_full_text_property(disp.intern_atom("_NET_WM_NAME")) or win.get_wm_name()
            if name and title_part in name:
                return win, name
            stack.extend(win.query_tree().children)
    return None, None


def _wait_for_window(disp, title_part: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        win, title = _find_window(disp, title_part)
        if win is not None:
            return win, title
        time.sleep(0.5)
    return None, None


def _close_like_a_window_manager(disp, win) -> None:
    from Xlib import X
    from Xlib.protocol import event

    protocols, delete = disp.intern_atom("WM_PROTOCOLS"), disp.intern_atom("WM_DELETE_WINDOW")
    win.send_event(event.ClientMessage(window=win, client_type=protocols,
                                       data=(32, [delete, X.CurrentTime, 0, 0, 0])))
    disp.flush()


def _prompt(steps: int, seed: int) -> dict:
    prompt = json.loads((REPO / "workflows" / "default_txt2img.json").read_text())
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = "tiny-sd1.safetensors"
        if node["class_type"] == "EmptyLatentImage":
            inputs.update(width=64, height=64)
        if node["class_type"] == "KSampler":
            inputs.update(steps=steps, seed=seed)
    return prompt


def test_desktop_window_serves_the_editor_and_stops_cleanly(display, tmp_path):
    from PIL import ImageGrab
    from Xlib import display as xdisplay

    from tools.make_tiny_checkpoint import make_tiny_checkpoint

    base = tmp_path / "base"
    make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / "tiny-sd1.safetensors")
    runtime_dir = Path(tempfile.mkdtemp(prefix="lg"))  # short: it holds the instance socket
    env = dict(os.environ, DISPLAY=display, XDG_RUNTIME_DIR=str(runtime_dir), HOME=str(tmp_path),
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    first_file, second_file = tmp_path / "my flow.json", tmp_path / "second.json"
    for path in (first_file, second_file):  # ComfyUI UI-format workflows, as users keep them
        shutil.copyfile(REPO / "workflows" / "default_txt2img.workflow.json", path)
    command = [sys.executable, "main.py", "--desktop", "--base-directory", str(base), "--cpu"]
    app = subprocess.Popen(command + [str(first_file)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = threading.Event()
    match: list[re.Match] = []

    def read_output() -> None:
        for line in app.stdout:
            lines.append(line)
            if not match and (m := URL_LINE.search(line)):
                match.append(m)
                found.set()

    threading.Thread(target=read_output, daemon=True).start()
    try:
        assert found.wait(180), "no server URL printed:\n" + "".join(lines)
        base_url, token = match[0].group(1), match[0].group(3)
        with pytest.raises(urllib.error.HTTPError) as refused:  # the port is private to the window
            urllib.request.urlopen(base_url + "api/queue", timeout=10)
        assert refused.value.code == 401

        disp = xdisplay.Display(display)
        # The page names the window through the bridge once it has opened the file it was given.
        win, title = _wait_for_window(disp, "my flow — Latentgraph")
        assert win is not None, "the file given at launch never opened:\n" + "".join(lines)

        second = subprocess.run(command + [str(second_file)], cwd=REPO, env=env, timeout=120,
                                capture_output=True, text=True)
        assert second.returncode == 0 and "already open" in second.stdout, second.stdout + second.stderr
        assert _wait_for_window(disp, "second — Latentgraph")[0] is not None, \
            "a second launch did not hand its file to the open window"
        time.sleep(2)  # let the canvas draw its first frame
        shot = ImageGrab.grab(xdisplay=display)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shot.save(SCREENSHOT)
        pixels = list(shot.convert("RGB").getdata())
        background = sum(1 for p in pixels if max(abs(a - b) for a, b in zip(p, CANVAS_BACKGROUND)) <= 3)
        assert background / len(pixels) > 0.2, "the window does not show the editor's canvas"
        assert len(set(pixels)) > 100, "the window looks blank (no nodes or text drawn)"

        done = _api(base_url, token, "prompt", {"prompt": _prompt(2, 1)})["prompt_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and done not in _api(base_url, token, f"history/{done}"):
            time.sleep(0.5)
        entry = _api(base_url, token, f"history/{done}")[done]
        assert entry["status"]["status_str"] == "success"

        running = _api(base_url, token, "prompt", {"prompt": _prompt(10000, 2)})["prompt_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _api(base_url, token, "queue")["queue_running"]:
            time.sleep(0.2)
        time.sleep(1)
        _close_like_a_window_manager(disp, win)
        assert app.wait(90) == 0, "".join(lines)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)

    shutil.rmtree(runtime_dir, ignore_errors=True)
    with sqlite3.connect(base / "user" / "latentgraph-queue.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        states = dict(db.execute("SELECT prompt_id, state FROM jobs").fetchall())
    assert states == {done: "success", running: "interrupted"}
