"""A pack cannot take start-up down or hide what it did: hangs, exits, builtins, pip installs;
its HTTP routes live behind our guards and its load status is served at /api/lg/packs."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.bootstrap import create_runtime
from app.settings import Settings
from engine.loader import load_custom_node_packs
from engine.registry import NodeRegistry

GOOD = '''
class Echo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1})}}
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return (value,)

NODE_CLASS_MAPPINGS = {"%s": Echo}
'''


def write(directory: Path, name: str, source: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(source))


def problems_of(registry: NodeRegistry, pack: str) -> list[str]:
    return [p.message for p in registry.problems if p.source == f"custom_nodes/{pack}"]


def test_a_hanging_pack_is_marked_failed_and_start_up_continues(tmp_path, caplog):
    packs = tmp_path / "custom_nodes"
    write(packs, "a_hangs.py", "import threading\nthreading.Event().wait(120)\nNODE_CLASS_MAPPINGS = {}\n")
    write(packs, "b_good.py", GOOD % "AfterHang")
    registry = NodeRegistry()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="engine.loader"):
        summary = load_custom_node_packs(registry, packs, import_timeout=0.5)
    assert time.monotonic() - started < 10
    assert not summary["a_hangs"]["ok"] and "did not finish within 0.5 s" in problems_of(registry, "a_hangs.py")[0]
    assert summary["b_good"]["nodes"] == ["AfterHang"]
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.getMessage().startswith("loading pack")] == [
        "loading pack a_hangs", "loading pack b_good"]


def test_exit_exception_and_builtins_are_contained_and_named(tmp_path):
    packs = tmp_path / "custom_nodes"
    write(packs, "exits.py", "import sys\nsys.exit(3)\n")
    write(packs, "raises.py", "raise RuntimeError('broken pack')\n")
    write(packs, "rebinds.py", "import builtins\nbuiltins.print = lambda *a, **k: None\nbuiltins.pack_global = 1\n"
          + GOOD % "Rebinder")
    write(packs, "z_good.py", GOOD % "Last")
    registry = NodeRegistry()
    original_print = print
    summary = load_custom_node_packs(registry, packs)
    assert "SystemExit" in problems_of(registry, "exits.py")[0]
    assert "broken pack" in problems_of(registry, "raises.py")[0]
    assert problems_of(registry, "rebinds.py") == ["pack changed Python builtins pack_global, print; restored"]
    import builtins
    assert builtins.print is original_print and not hasattr(builtins, "pack_global")
    assert summary["rebinds"]["nodes"] == ["Rebinder"] and summary["z_good"]["nodes"] == ["Last"]


def test_pip_install_from_a_pack_is_refused_and_reported(tmp_path):
    packs = tmp_path / "custom_nodes"
    write(packs, "installs.py", """
        import subprocess, sys
        try:
            subprocess.run([sys.executable, "-m", "pip", "install", "some-package"], check=True)
        except PermissionError:
            pass  # a pack that carries on without its package
        import os
        os.system("pip3 install --quiet another-package")
    """)
    registry = NodeRegistry()
    load_custom_node_packs(registry, packs)
    messages = problems_of(registry, "installs.py")
    assert "PermissionError" in messages[0]  # os.system raised: the import failed
    assert "pip install at run time refused" in messages[1]
    assert "some-package" in messages[1] and "another-package" in messages[1]
    # other subprocesses are not affected
    assert subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True).stdout == "ok\n"


ROUTE_PACK = '''
from aiohttp import web
from server import PromptServer

routes = PromptServer.instance.routes


@routes.get("/route_pack/hello")
async def hello(request):
    PromptServer.instance.send_sync("route_pack.hello", {"n": 1})
    return web.json_response({"hello": "pack"})


PromptServer.instance.app.router.add_get("/route_pack/direct", hello)
NODE_CLASS_MAPPINGS = {}
'''


@pytest.fixture
def served(tmp_path):
    from server.context import ServerConfig
    from tests.server.harness import ServerThread

    write(tmp_path / "custom_nodes", "route_pack.py", ROUTE_PACK)
    write(tmp_path / "custom_nodes", "broken_pack.py", "import comfy.not_here\n")
    runtime = create_runtime(Settings(base_directory=tmp_path, cache_ram_gb=0.5))
    with ServerThread(runtime, ServerConfig(port=0, web_root=tmp_path / "no-editor")) as server:
        yield server


def test_pack_routes_are_served_behind_our_guards(served):
    socket = served.websocket()
    try:
        response = served.get("/route_pack/hello")
        assert response.status == 200 and response.json() == {"hello": "pack"}
        message = socket.next_text()
        while message["type"] != "route_pack.hello":  # send_sync went through our hub
            message = socket.next_text()
        assert message["data"] == {"n": 1}
    finally:
        socket.close()
    assert served.get("/route_pack/direct").status == 200
    assert served.get("/route_pack/hello", headers={"Host": "evil.example"}).status in (400, 403)


def test_pack_status_names_the_failing_pack(served):
    body = served.get("/api/lg/packs").json()
    assert body["enabled"] is True
    assert body["packs"]["route_pack"]["ok"] is True
    broken = body["packs"]["broken_pack"]
    assert broken["ok"] is False and "comfy.not_here" in broken["problems"][0]
