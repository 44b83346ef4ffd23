"""Fixtures for the editor's browser tests: a server on a loopback port and headless chromium.

The server is the real Latentgraph server (built-in nodes, a tiny random SD1 checkpoint written
by tools/make_tiny_checkpoint.py) serving web/dist; with LG_WEB_MOCK=1, or where the server
cannot be built, tests marked `mock_ok` run against tests/web/mock_server.py instead and the
rest skip. Debian's /usr/bin/chromium is driven through the `playwright` package; no browser is
ever downloaded. Tests skip cleanly when chromium or the built editor (web/dist) is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.web.browser import CHROMIUM, EditorPage, launch_browser
from tests.web.mock_server import WEB_DIST, create_app
from tests.web.mock_server import ServerThread as MockThread

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHECKPOINT = "tiny-sd1.safetensors"


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    if not (WEB_DIST / "index.html").exists() or not (WEB_DIST / "app.js").exists():
        pytest.skip("web editor not built (run `make web` or `cd web && npm ci && npm run build`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright python package not installed")


class RealServer:
    """The real server in a thread over a temporary base directory, shared by the session."""

    def __init__(self, base: Path) -> None:
        from app.bootstrap import create_runtime
        from app.settings import Settings
        from server.context import ServerConfig
        from tests.server.harness import ServerThread
        from tools.make_tiny_checkpoint import make_tiny_checkpoint

        self.base = base
        make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / CHECKPOINT)
        runtime = create_runtime(Settings(base_directory=base, cpu=True, cache_ram_gb=1.0,
                                          preview_method="latent2rgb"), load_custom_nodes=False)
        self.runtime = runtime
        self.thread = ServerThread(runtime, ServerConfig(port=0, web_root=WEB_DIST))
        self.thread.__enter__()
        self.url = f"http://127.0.0.1:{self.thread.port}"
        self.kind = "real"

    def post(self, path: str, body: dict) -> None:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def reset(self) -> None:
        """Forget saved workflows, the editor session, the queue and the history."""
        self.post("/api/queue", {"clear": True})
        self.post("/api/interrupt", {})
        self.post("/api/history", {"clear": True})
        user = self.base / "user"
        for path in user.rglob("*"):
            if path.is_file() and "sqlite" not in path.name:
                path.unlink()

    def stop(self) -> None:
        self.thread.__exit__(None, None, None)


@pytest.fixture(scope="session")
def real_server(tmp_path_factory):
    _require_browser()
    if os.environ.get("LG_WEB_MOCK") == "1":
        yield None
        return
    try:
        server = RealServer(tmp_path_factory.mktemp("lg-web"))
    except Exception as exc:  # the server or a node family is not there yet: fall back
        print(f"real server unavailable ({exc!r}); browser tests use the mock server")
        yield None
        return
    yield server
    server.stop()


@pytest.fixture()
def server(real_server, tmp_path, request):
    """The real server (reset for this test), or a fresh mock where that is all there is."""
    if real_server is not None and not request.node.get_closest_marker("mock_only"):
        real_server.reset()
        yield real_server
        return
    if real_server is not None or request.node.get_closest_marker("mock_only") or request.node.get_closest_marker("mock_ok"):
        mock = MockThread(create_app(tmp_path / "root", step_delay=float(os.environ.get("LG_MOCK_STEP_DELAY", "0.02"))))
        mock.start()
        mock.kind = "mock"
        mock.root = tmp_path / "root"
        yield mock
        mock.stop()
        return
    pytest.skip("needs the real server")


@pytest.fixture(scope="session")
def chromium():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        yield browser
        browser.close()


@pytest.fixture()
def editor(chromium, server, request):
    """The editor loaded in a fresh browser context (empty localStorage)."""
    context = chromium.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ed = EditorPage(page, server.url, SCREENSHOTS, request.node.name)
    ed.server = server
    ed.open()
    yield ed
    context.close()
    assert not errors, f"uncaught page errors: {errors}"


def pytest_configure(config):
    config.addinivalue_line("markers", "mock_only: runs against tests/web/mock_server.py (scripted failures)")
    config.addinivalue_line("markers", "mock_ok: may run against the mock server when the real one is missing")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SCREENSHOTS / "tmp", ignore_errors=True)
