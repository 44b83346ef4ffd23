"""The server's side of one worker process: `ProcessExecutor` runs prompts there.

It offers the executor interface the server's Worker thread calls (`execute`), so queueing,
history commits and the order of events stay exactly as with an in-process executor. While a
prompt runs it relays the worker's events and previews to the listener, passes an interrupt on
within one poll, and notices the worker's death (the process sentinel) at once: that job raises
`WorkerLost`, which the Worker records as the job's error, and a fresh worker is started.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from multiprocessing.connection import wait
from typing import Any, Iterable

from engine.events import ExecutionListener, NullListener
from engine.interrupt import InterruptFlag
from engine.outcome import ExecutionOutcome
from server.workers.child import worker_main
from server.workers.recipe import RuntimeRecipe

log = logging.getLogger("latentgraph.workers")

START_TIMEOUT_S = 600.0  # loading node packs can take minutes on a cold disk
POLL_S = 0.05  # how soon an interrupt reaches the worker when no message arrives
STOP_TIMEOUT_S = 10.0


class WorkerLost(RuntimeError):
    """The worker process ended while running a job (crash, os._exit, OOM kill)."""


class WorkerStartError(RuntimeError):
    """The worker process could not build its runtime."""


def exit_cause(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (often the system's out-of-memory killer)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"


class ProcessExecutor:
    """One worker process, started on first use and restarted after it dies."""

    def __init__(self, recipe: RuntimeRecipe, environment: dict[str, str] | None = None,
                 name: str = "worker-1") -> None:
        self.recipe, self.environment, self.name = recipe, dict(environment or {}), name
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded server
        self._process: Any = None
        self._conn: Any = None
        self._interrupt = self._context.Event()
        self._lock = threading.Lock()  # one conversation with the worker at a time
        self.info: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}  # the worker's cache counters after its last job
        self.restarts = 0
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker now (the server does so at start-up, so the first job finds it warm)."""
        with self._lock:
            self._ensure_running()

    def _ensure_running(self) -> None:
        if self._closed:
            raise WorkerStartError(f"{self.name} is shut down")
        if self._process is not None and self._process.is_alive():
            return
        if self._process is not None:
            self._discard()
            self.restarts += 1
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main, name=f"latentgraph-{self.name}", daemon=True,
            args=(self.recipe, child_end, self._interrupt, logging.getLogger().level,
                  self.environment))
        process.start()
        child_end.close()
        self._process, self._conn = process, parent_end
        if not parent_end.poll(START_TIMEOUT_S):
            self._discard()
            raise WorkerStartError(f"{self.name} did not start within {START_TIMEOUT_S:.0f} s")
        try:
            tag, payload = parent_end.recv()
        except (EOFError, OSError):
            process.join(5)
            cause = exit_cause(process.exitcode)
            self._discard()
            raise WorkerStartError(f"{self.name} {cause} while starting") from None
        if tag != "ready":
            self._discard()
            raise WorkerStartError(f"{self.name} could not start:\n{payload}")
        self.cache = payload.pop("cache", {})
        self.info = payload
        log.info("%s ready (pid %s, %s)", self.name, payload.get("pid"), payload.get("device", "cpu"))

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        if self._process is not None:
            self._process.join(5)
        self._process = self._conn = None

    def close(self) -> None:
        """Ask the worker to stop; kill it if it does not within STOP_TIMEOUT_S (also when a
        node that never checks for interrupts still holds it: its job is then reported lost)."""
        self._closed = True
        if not self._lock.acquire(timeout=STOP_TIMEOUT_S):
            process = self._process
            if process is not None:
                process.kill()
            return
        try:
            if self._process is None:
                return
            try:
                self._conn.send(("stop", None))
            except (OSError, ValueError):
                pass
            self._process.join(STOP_TIMEOUT_S)
            self._discard()
        finally:
            self._lock.release()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def describe(self) -> dict[str, Any]:
        alive = self._process is not None and self._process.is_alive()
        return {"name": self.name, "alive": alive, "restarts": self.restarts, **self.info}

    # -- the executor interface -----------------------------------------------------------------
    def execute(self, prompt: dict[str, Any], prompt_id: str,
                listener: ExecutionListener | None = None,
                extra_data: dict[str, Any] | None = None, outputs: Iterable[str] | None = None,
                interrupt: InterruptFlag | None = None, force: bool = False) -> ExecutionOutcome:
        listener = listener or NullListener()
        with self._lock:
            self._ensure_running()
            self._interrupt.clear()
            self._conn.send(("run", {"prompt": prompt, "prompt_id": prompt_id,
                                     "extra_data": extra_data,
                                     "outputs": None if outputs is None else list(outputs),
                                     "force": force}))
            return self._relay(listener, interrupt)

    def _relay(self, listener: ExecutionListener, interrupt: InterruptFlag | None) -> ExecutionOutcome:
        conn, process = self._conn, self._process
        while True:
            ready = wait([conn, process.sentinel], POLL_S)
            if interrupt is not None and interrupt.is_set() and not self._interrupt.is_set():
                self._interrupt.set()
            if conn in ready:
                try:
                    tag, payload = conn.recv()
                except (EOFError, OSError):
                    raise self._lost() from None
                if tag == "event":
                    listener.on_event(*payload)
                elif tag == "preview":
                    listener.on_preview(*payload)
                elif tag == "outcome":
                    outcome, self.cache = payload
                    return outcome
                elif tag == "crashed":
                    raise payload
            elif process.sentinel in ready:
                raise self._lost()

    def _lost(self) -> WorkerLost:
        """Record the death, start a replacement in the background, and word the job's error."""
        self._process.join(5)
        cause = exit_cause(self._process.exitcode)
        log.error("%s %s while running a job; starting a new worker", self.name, cause)
        self._discard()
        if not self._closed:
            self.restarts += 1
            threading.Thread(target=self._restart_quietly, daemon=True).start()
        return WorkerLost(f"The worker process running this job {cause}. A node or a native "
                          "library it uses crashed it; results cached in that worker were lost "
                          "with it. A new worker has started and the queue goes on.")

    def _restart_quietly(self) -> None:
        try:
            self.start()
        except Exception:  # the next job will try again and report why
            log.exception("%s could not be restarted", self.name)

    def free(self, unload_models: bool, free_memory: bool) -> None:
        """POST /free, between prompts: the worker drops what it holds."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                return
            self._conn.send(("free", (unload_models, free_memory)))
            while True:
                ready = wait([self._conn, self._process.sentinel], STOP_TIMEOUT_S)
                if self._conn not in ready:
                    return  # died or stuck: the next job restarts it
                try:
                    tag, payload = self._conn.recv()
                except (EOFError, OSError):
                    return
                if tag == "freed":
                    self.cache = payload
                    return
