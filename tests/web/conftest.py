"""Fixtures for the editor's browser tests: the real server (tests/web/server.py) on a loopback
port and headless chromium. Debian's /usr/bin/chromium is driven through the `playwright`
package; no browser is ever downloaded. Tests skip cleanly when chromium or the built editor
(web/dist) is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.web.browser import CHROMIUM, EditorPage, launch_browser
from tests.web.server import WEB_DIST, RealServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    if not (WEB_DIST / "index.html").exists() or not (WEB_DIST / "app.js").exists():
        pytest.skip("web editor not built (run `make web` or `cd web && npm ci && npm run build`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright python package not installed")


@pytest.fixture(scope="session")
def real_server(tmp_path_factory):
    _require_browser()
    server = RealServer(tmp_path_factory.mktemp("lg-web"))
    yield server
    server.stop()


@pytest.fixture()
def server(real_server):
    """The session's real server, reset for this test."""
    real_server.reset()
    return real_server


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
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SCREENSHOTS / "tmp", ignore_errors=True)
