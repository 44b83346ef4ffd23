"""Start the real server on a loopback port (in a thread, or as a subprocess) and talk to it.

The runtime is built from the engine's parts with the small test node pack, so these tests do
not depend on model weights; `default_runtime()` uses the full app bootstrap when asked.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import websocket  # websocket-client

from server.context import ServerConfig
from server.main import serve

REPO = Path(__file__).resolve().parents[2]


def make_runtime(base: Path, registry: Any = None) -> SimpleNamespace:
    """Registry (test pack), output cache, services and executor over a temporary base dir."""
    from engine.cache import OutputCache
    from engine.executor import Executor
    from engine.paths import FolderPaths
    from engine.runtime import Services

    from tests.server.nodepack import make_registry

    paths = FolderPaths(base)
    paths.ensure_directories()
    registry = registry or make_registry()
    cache = OutputCache()
    services = Services(paths=paths, settings={})
    executor = Executor(registry, cache, services)
    return SimpleNamespace(registry=registry, cache=cache, services=services, executor=executor,
                           settings=None)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ServerThread:
    """The real aiohttp server, serving on 127.0.0.1:<free port> from a background thread."""

    runtime: Any
    config: ServerConfig = field(default_factory=lambda: ServerConfig(port=0))
    port: int = 0

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(ports: list[int]) -> None:
                self.port = ports[0]
                self._ready.set()

            await serve(self.runtime, self.config, on_ready=ready, stop=self._stop)

        asyncio.run(main())

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    # -- HTTP -------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> Response:
        return http_request(self.port, method, path, body, raw=raw, headers=headers,
                            timeout=timeout)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def queue_prompt(self, prompt: dict[str, Any], client_id: str | None = None,
                     **extra: Any) -> str:
        response = self.post("/prompt", {"prompt": prompt, "client_id": client_id, **extra})
        assert response.status == 200, response.body
        return response.json()["prompt_id"]

    def wait_history(self, prompt_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").json()
            if prompt_id in entry:
                return entry[prompt_id]
            time.sleep(0.02)
        raise TimeoutError(f"{prompt_id} did not finish")

    def websocket(self, client_id: str | None = None, feature_flags: dict[str, Any] | None = None,
                  **kw: Any) -> "Socket":
        return Socket.connect(self.port, client_id or uuid.uuid4().hex, feature_flags, **kw)


def http_request(port: int, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 30,
                 host: str = "127.0.0.1") -> Response:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    all_headers = dict(headers or {})
    payload = raw
    if body is not None and raw is None:
        payload = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()},
                        response.read())
    finally:
        connection.close()


@dataclass
class Socket:
    """A synchronous websocket client that records every message it receives."""

    ws: websocket.WebSocket
    sid: str
    texts: list[dict[str, Any]] = field(default_factory=list)
    binaries: list[bytes] = field(default_factory=list)

    @classmethod
    def connect(cls, port: int, client_id: str, feature_flags: dict[str, Any] | None = None,
                **kw: Any) -> "Socket":
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?clientId={client_id}",
                                         timeout=30, **kw)
        if feature_flags is not None:
            ws.send(json.dumps({"type": "feature_flags", "data": feature_flags}))
        socket = cls(ws, client_id)
        first = socket.next_text()
        assert first["type"] == "status" and first["data"]["sid"] == client_id, first
        return socket

    def next_text(self) -> dict[str, Any]:
        while True:
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(data, parse_constant=_no_bare_constants)
                self.texts.append(message)
                return message
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.binaries.append(data)

    def until_done(self, prompt_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Messages for `prompt_id` up to its closing `executing {node: null}`."""
        deadline = time.monotonic() + timeout
        self.ws.settimeout(timeout)
        collected = []
        while time.monotonic() < deadline:
            message = self.next_text()
            data = message.get("data", {})
            if isinstance(data, dict) and data.get("prompt_id") == prompt_id:
                collected.append(message)
                if message["type"] == "executing" and data.get("node") is None:
                    return collected
        raise TimeoutError(f"no end of {prompt_id}")

    def close(self) -> None:
        self.ws.close()


def _no_bare_constants(name: str) -> Any:
    raise AssertionError(f"the server sent {name}, which browsers cannot parse")


def names(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages if not m["type"].startswith("lg.")]


def chain_prompt(value: int = 1, seconds: float | None = None) -> dict[str, Any]:
    """Number → (Sleep →) Show: a cheap prompt with one output node."""
    prompt: dict[str, Any] = {"1": {"class_type": "TestNumber", "inputs": {"value": value}}}
    source: list[Any] = ["1", 0]
    if seconds is not None:
        prompt["2"] = {"class_type": "TestSleep", "inputs": {"value": source, "seconds": seconds}}
        source = ["2", 0]
    prompt["3"] = {"class_type": "TestShow", "inputs": {"value": source}}
    return prompt


def python() -> str:
    return sys.executable
