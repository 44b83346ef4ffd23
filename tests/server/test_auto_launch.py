"""--auto-launch (ComfyUI's flag) opens the default browser at the served URL once it listens."""

from __future__ import annotations

import threading

import server.main as server_main


def _run_main(monkeypatch, tmp_path, *flags: str) -> list[str]:
    opened: list[str] = []
    done = threading.Event()

    def fake_open(url: str) -> None:
        opened.append(url)
        done.set()

    async def fake_serve(runtime, config, on_ready=None, stop=None):  # noqa: ANN001
        if on_ready is not None:
            on_ready([43210])
        return 0

    monkeypatch.setattr("app.bootstrap.create_runtime", lambda settings: object())
    monkeypatch.setattr(server_main, "serve", fake_serve)
    monkeypatch.setattr("webbrowser.open", fake_open)
    assert server_main.main(["--base-directory", str(tmp_path), *flags]) == 0
    done.wait(5)
    return opened


def test_auto_launch_opens_the_browser_at_the_bound_port(monkeypatch, tmp_path):
    assert _run_main(monkeypatch, tmp_path, "--auto-launch", "--port", "0") == ["http://127.0.0.1:43210/"]


def test_without_the_flag_no_browser_is_opened(monkeypatch, tmp_path):
    assert _run_main(monkeypatch, tmp_path) == []
