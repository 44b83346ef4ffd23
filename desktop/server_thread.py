"""The server on a background thread: the GUI toolkit needs the main thread for its own loop."""

from __future__ import annotations

import asyncio
import threading

from server.context import EngineRuntime, ServerConfig
from server.main import serve


class BackgroundServer:
    """`server.main.serve` in a thread, started and stopped from the GUI side."""

    def __init__(self, runtime: EngineRuntime, config: ServerConfig) -> None:
        self.runtime, self.config = runtime, config
        self.port: int | None = None
        self.exit_code: int | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="latentgraph-server")

    def _run(self) -> None:
        async def main() -> int:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

            def ready(ports: list[int]) -> None:
                self.port = ports[0] if ports else self.config.port
                self._ready.set()

            return await serve(self.runtime, self.config, on_ready=ready, stop=self._stop)

        try:
            self.exit_code = asyncio.run(main())
        finally:
            self._ready.set()  # a failed start must not leave start() waiting

    def start(self, timeout: float = 60.0) -> int:
        """Start serving; the bound port. Raises RuntimeError when the server could not start."""
        self._thread.start()
        self._ready.wait(timeout)
        if self.port is None:
            raise RuntimeError("the server did not start (see the messages above)")
        return self.port

    def stop(self, timeout: float = 60.0) -> int:
        """Stop as Ctrl+C does (the running job is interrupted and recorded); the exit code."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already ended
                pass
        self._thread.join(timeout)
        return self.exit_code if self.exit_code is not None else 1
