"""The official ComfyUI frontend (pip package comfyui-frontend-package) served by our server with
--front-end-root: it loads, takes ComfyUI's classic default workflow, queues it, and shows the
queue panel, progress, the preview and the saved image, with no unknown websocket events and no
request of ours failing except the ones ComfyUI itself answers with 404 on a fresh install."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.web.browser import CHROMIUM, launch_browser

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = "tiny-sd1.safetensors"
# What ComfyUI answers with 404 too on a fresh install: no user.css, no saved workflows or
# subgraphs yet, no template settings file, no comfyui-workflow-templates package.
EXPECTED_404 = re.compile(r"/user\.css$|/api/userdata/user\.css$|/api/userdata\?dir=(workflows|"
                          r"subgraphs)&|/api/userdata/comfy\.templates\.json$|/templates/index")


def _frontend_static() -> Path:
    try:
        import comfyui_frontend_package
    except ImportError:
        pytest.skip("comfyui-frontend-package is not installed (requirements-dev.txt)")
    return Path(comfyui_frontend_package.__file__).parent / "static"


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    pytest.importorskip("playwright.sync_api")
    static = _frontend_static()
    from app.bootstrap import create_runtime
    from app.settings import Settings
    from server.context import ServerConfig
    from server.main import build_parser, config_from_args
    from tests.server.harness import ServerThread
    from tools.make_tiny_checkpoint import make_tiny_checkpoint

    base = tmp_path_factory.mktemp("comfy-frontend")
    make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / CHECKPOINT)
    runtime = create_runtime(Settings(base_directory=base, cpu=True, cache_ram_gb=1.0,
                                      preview_method="latent2rgb"), load_custom_nodes=False)
    args = build_parser().parse_args(["--front-end-root", str(static), "--port", "0"])
    config = config_from_args(args)
    assert isinstance(config, ServerConfig) and config.web_root == static.resolve()
    with ServerThread(runtime, config) as running:
        url = f"http://127.0.0.1:{running.port}"
        # a returning user: no first-run template browser over the canvas
        _post(url + "/api/settings", {"Comfy.TutorialCompleted": True})
        yield url


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def _default_workflow() -> dict:
    """ComfyUI's classic default graph, on the tiny checkpoint at 64x64 and 3 steps."""
    workflow = json.loads((REPO / "workflows" / "default_txt2img.workflow.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = [CHECKPOINT]
        elif node["type"] == "EmptyLatentImage":
            node["widgets_values"] = [64, 64, 1]
        elif node["type"] == "KSampler":
            node["widgets_values"][2] = 3
    return workflow


WATCH = """() => {
  window.__seen = {types: [], progress: 0, previews: 0, executed: []};
  const api = window.app.api;
  for (const t of ['execution_start', 'executing', 'progress', 'executed', 'execution_success',
                   'execution_error', 'progress_state'])
    api.addEventListener(t, e => {
      window.__seen.types.push(t);
      if (t === 'progress') window.__seen.progress = Math.max(window.__seen.progress, e.detail.value / e.detail.max);
      if (t === 'executed') window.__seen.executed.push(e.detail);
    });
  api.addEventListener('b_preview', () => window.__seen.previews++);
}"""


def test_official_frontend_queues_the_default_workflow(comfy_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        console: list[str] = []
        failed: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 and r.url.startswith(comfy_server)
                and not (r.status == 404 and EXPECTED_404.search(r.url)) else None)
        try:
            page.goto(comfy_server + "/")
            page.wait_for_function("() => window.app && window.app.graph && window.app.api "
                                   "&& window.app.api.socket && window.app.api.socket.readyState === 1",
                                   timeout=60000)
            page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }",
                          _default_workflow())
            assert page.evaluate("() => window.app.graph.nodes.length") == 7
            page.evaluate(WATCH)

            # queued while the queue is paused: the queue panel shows it waiting
            _post(comfy_server + "/api/lg/queue/pause", {})
            page.get_by_role("button", name="Run").first.click()
            page.wait_for_selector("button:has-text('1 active')", timeout=20000)
            jobs = json.loads(urllib.request.urlopen(
                comfy_server + "/api/jobs?status=in_progress,pending").read())
            assert [job["status"] for job in jobs["jobs"]] == ["pending"]
            _post(comfy_server + "/api/lg/queue/resume", {})

            page.wait_for_function("() => window.__seen.types.includes('execution_success') "
                                   "|| window.__seen.types.includes('execution_error')",
                                   timeout=120000)
            seen = page.evaluate("() => window.__seen")
            assert "execution_error" not in seen["types"], seen["types"]
            assert seen["progress"] == 1.0 and seen["previews"] >= 1
            saved = [item for event in seen["executed"] if event["node"] == "9"
                     for item in event["output"]["images"]]
            assert len(saved) == 1 and saved[0]["type"] == "output"
            outputs = page.evaluate("() => window.app.nodeOutputs['9']")
            assert outputs["images"][0]["filename"] == saved[0]["filename"]

            # the finished job in the queue panel, with its image loaded from /view
            page.wait_for_selector("button:has-text('0 active')", timeout=20000)
            page.locator("button:has-text('active')").first.click()
            page.wait_for_function(
                "(name) => [...document.querySelectorAll('img')].some(i => i.src.includes("
                "'filename=' + name) && i.complete && i.naturalWidth === 64)",
                arg=saved[0]["filename"], timeout=20000)
            shots = REPO / "test-artifacts" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "comfyui-frontend-run.png"))
        finally:
            time.sleep(0.2)
            browser.close()
    # console errors: only the failed loads checked above (and the internet, unreachable here)
    # and the missing templates package; never an unknown event or a response it cannot parse
    errors = [line for line in console if line.startswith(("error:", "pageerror:"))
              and not line.startswith("error: Failed to load resource")
              and "Error loading core workflow templates" not in line]
    assert not errors, errors
    assert not [line for line in console if "Unknown message type" in line
                or "Unhandled message" in line], console
    assert not failed, failed
