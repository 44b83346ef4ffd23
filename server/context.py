"""Everything a request handler needs, passed through the aiohttp app (no global singletons)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from engine.cache import OutputCache
from engine.executor import Executor
from engine.paths import FolderPaths
from engine.registry import NodeRegistry
from engine.runtime import Services
from server.hub import WebSocketHub
from server.jobs import JobQueue
from server.worker import Worker
from server.workers.process import ProcessExecutor
from server.workers.recipe import RuntimeRecipe


class EngineRuntime(Protocol):
    """What the server uses of app.bootstrap.Runtime (tests build one from the engine's parts)."""

    registry: NodeRegistry
    cache: OutputCache
    services: Services
    executor: Executor


@dataclass
class ServerConfig:
    """Network and limits, from the command line (see server.main)."""

    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 8188
    token: str | None = None
    cors_origins: frozenset[str] = frozenset()
    allowed_host_names: frozenset[str] = frozenset()
    max_upload_bytes: int = 100 * 1024 * 1024
    max_image_pixels: int = 64 * 1024 * 1024
    web_root: Path | None = None
    # How a worker process builds its runtime; None runs prompts in the server process
    # (`--workers 0`, and tests that hand the server a runtime built from parts).
    worker_recipe: RuntimeRecipe | None = None

    @property
    def loopback_only(self) -> bool:
        return all(host in ("127.0.0.1", "::1", "localhost") for host in self.hosts)


@dataclass
class ServerContext:
    """The running server's parts; `request.app[CONTEXT]` in every handler."""

    runtime: EngineRuntime
    config: ServerConfig
    queue: JobQueue
    hub: WebSocketHub
    worker: Worker
    worker_process: ProcessExecutor | None = None  # None: prompts run in this process
    started: float = 0.0

    @property
    def registry(self) -> NodeRegistry:
        return self.runtime.registry

    @property
    def paths(self) -> FolderPaths:
        return self.runtime.services.paths

    @property
    def userdata_root(self) -> Path:
        """user/default/: workflows and settings saved by the canvas (ComfyUI's layout)."""
        return Path(self.paths.user_directory) / "default"

    def workers(self) -> list[dict[str, Any]]:
        """Where prompts run, for /system_stats."""
        if self.worker_process is not None:
            return [self.worker_process.describe()]
        return [{"name": "in-process", "alive": True, "restarts": 0}]

    def cache_stats(self) -> dict[str, Any]:
        """The output cache's counters and the loaded models (a worker's: as of its last job)."""
        if self.worker_process is not None:
            return dict(self.worker_process.cache)
        stats = dict(self.runtime.cache.stats())
        manager = self.runtime.services.model_manager  # None when the runtime has no models
        stats["models"] = [] if manager is None else [
            {"name": m.name, "size_bytes": m.size_bytes, "on_device": m.on_device}
            for m in manager.loaded_models()]
        return stats

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"exec_info": {"queue_remaining": self.queue.remaining()}}
        if self.queue.paused:
            status["paused"] = True
        return status


CONTEXT: web.AppKey[ServerContext] = web.AppKey("latentgraph_context", ServerContext)
