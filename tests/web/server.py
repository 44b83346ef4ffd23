"""The real Latentgraph server for the browser tests and bench/web.py: built-in nodes, a tiny
random SD1 checkpoint (tools/make_tiny_checkpoint.py) and web/dist, on a loopback port."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
CHECKPOINT = "tiny-sd1.safetensors"


class RealServer:
    """The server in a thread over ``base`` (models, user files, outputs), until ``stop``."""

    def __init__(self, base: Path) -> None:
        from app.bootstrap import create_runtime
        from app.settings import Settings
        from server.context import ServerConfig
        from tests.server.harness import ServerThread
        from tools.make_tiny_checkpoint import make_tiny_checkpoint

        self.base = base
        make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / CHECKPOINT)
        self.runtime = create_runtime(Settings(base_directory=base, cpu=True, cache_ram_gb=1.0,
                                               preview_method="latent2rgb"), load_custom_nodes=False)
        self.thread = ServerThread(self.runtime, ServerConfig(port=0, web_root=WEB_DIST))
        self.thread.__enter__()
        self.url = f"http://127.0.0.1:{self.thread.port}"

    def post(self, path: str, body: dict) -> None:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    def reset(self) -> None:
        """Forget saved workflows, the editor session, the queue and the history."""
        self.post("/api/queue", {"clear": True})
        self.post("/api/interrupt", {})
        self.post("/api/history", {"clear": True})
        for path in (self.base / "user").rglob("*"):
            if path.is_file() and "sqlite" not in path.name:
                path.unlink()

    def stop(self) -> None:
        self.thread.__exit__(None, None, None)
