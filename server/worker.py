"""The one worker thread that runs queued prompts through `Executor.execute`.

Execution is synchronous and may take minutes; it happens here so the event loop keeps serving
HTTP and websockets. Events cross back to the loop through `WebSocketHub.post`, in order. Any
exception that escapes the executor (an engine bug, out of memory) is turned into an
`execution_error` for that job; the worker, the server and the caches carry on. A job's closing
events reach its client only after its history row is committed (see ForwardingListener).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable, Iterable, Protocol

from engine.events import ExecutionListener
from engine.failures import failure_message, is_out_of_memory
from engine.interrupt import InterruptFlag
from engine.outcome import ExecutionOutcome
from server.hub import WebSocketHub
from server.jobs import Job, JobQueue

log = logging.getLogger(__name__)


# Events that tell a client the job is over (or carry its final report): held back until the
# history row is committed, so nobody is told "done" about a result a crash could still lose.
CLOSING_EVENTS = frozenset({"lg.run_report", "execution_success", "execution_error",
                            "execution_interrupted"})


class PromptExecutor(Protocol):
    """What the worker needs of engine.executor.Executor (tests script one)."""

    def execute(self, prompt: dict[str, Any], prompt_id: str, listener: ExecutionListener | None = None,
                extra_data: dict[str, Any] | None = None, outputs: Iterable[str] | None = None,
                interrupt: InterruptFlag | None = None, force: bool = False) -> ExecutionOutcome: ...


class ForwardingListener:
    """Engine listener that forwards a job's events to the client that queued it.

    From the first closing event on, events are held (in order) until `release()`, which the
    worker calls once the history row is committed.
    """

    def __init__(self, hub: WebSocketHub, job: Job) -> None:
        self.hub, self.job = hub, job
        self._held: list[tuple[str, dict[str, Any]]] | None = None

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        if event == "executing":
            self.job.current_node = data.get("node")
        elif event == "progress_state":
            self.job.progress_state = data
        if event == "executing" and data.get("node") is None:
            return  # the worker sends the end-of-prompt `executing` after history is stored
        if event in CLOSING_EVENTS and self._held is None:
            self._held = []
        if self._held is not None:
            self._held.append((event, data))
            return
        self.send(event, data)

    def send(self, event: str, data: dict[str, Any]) -> None:
        """To the client that queued the job; a job queued without client_id sends no events
        (only `status` is broadcast, as in ComfyUI)."""
        if self.job.client_id is not None:
            self.hub.post(self.hub.send, event, data, self.job.client_id)

    def hold(self, event: str, data: dict[str, Any]) -> None:
        """Queue a closing event produced outside the engine (the worker's crash report)."""
        self._held = self._held if self._held is not None else []
        self._held.append((event, data))

    def release(self) -> None:
        """Send the held events, in order; call only after the history row is committed."""
        held, self._held = self._held or [], None
        for event, data in held:
            self.send(event, data)

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None:
        if self.job.client_id is not None:
            self.hub.post(self.hub.send_preview, self.job.client_id, prompt_id, node_id,
                          image_format, image)


class Worker:
    """Owns the execution thread; `start()` / `stop()` from the server's lifecycle hooks."""

    def __init__(self, queue: JobQueue, hub: WebSocketHub, executor: PromptExecutor,
                 free_memory: Callable[[bool, bool], None]) -> None:
        self.queue, self.hub, self.executor = queue, hub, executor
        self._free_memory = free_memory
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latentgraph-worker", daemon=True)
        self._free_flags: dict[str, bool] = {"unload_models": False, "free_memory": False}
        self._flags_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop taking jobs, interrupt the running one, wait for the thread; True if it ended."""
        self._stopping.set()
        self.queue.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Act on POST /free between prompts (never while a node is using the models)."""
        with self._flags_lock:
            self._free_flags["unload_models"] |= unload_models
            self._free_flags["free_memory"] |= free_memory
        self.queue.wake("free")

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.queue.take(timeout=1.0)
                if job is not None:
                    self._run_job(job)
                self.queue.pop_wake_reasons()
                self._apply_free_flags()
            except Exception:  # the queue must keep moving whatever happens to one job
                log.exception("worker error; continuing with the next job")
                time.sleep(0.1)

    def _apply_free_flags(self) -> None:
        with self._flags_lock:
            flags, self._free_flags = self._free_flags, {"unload_models": False,
                                                         "free_memory": False}
        if flags["unload_models"] or flags["free_memory"]:
            try:
                self._free_memory(flags["unload_models"], flags["free_memory"])
            except Exception:  # freeing memory must never kill the worker
                log.exception("freeing memory failed")

    def _run_job(self, job: Job) -> None:
        listener = ForwardingListener(self.hub, job)
        started = time.perf_counter()
        try:
            outcome = self.executor.execute(
                job.stored.prompt, job.prompt_id, listener, extra_data=job.run_extra_data(),
                outputs=job.stored.outputs_to_execute, interrupt=job.interrupt,
                force=job.stored.force)
            state, result = outcome_to_history(outcome, job)
        except BaseException as exc:  # noqa: BLE001 - the worker must survive anything a node does
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            log.error("prompt %s failed outside a node:\n%s", job.prompt_id, traceback.format_exc())
            state, result = crash_to_history(exc, job)
            listener.hold("execution_error", result["status"]["messages"][-1][1])
        seconds = time.perf_counter() - started
        result["lg"]["seconds"] = round(seconds, 4)
        try:
            self.queue.finish(job, state, result)  # commits the history row
        finally:
            # Only now may a client learn the job is over: execution_success/error, then the
            # closing `executing {node: null}`. If the write failed (disk full) they are still
            # sent, so no client waits forever; the error is logged by the worker loop.
            listener.release()
            listener.send("executing", {"node": None, "prompt_id": job.prompt_id})
            job.current_node = None
        report = result["lg"].get("run_report") or {}
        ran = sum(1 for r in report.values() if isinstance(r, dict) and r.get("state") == "ran")
        log.info("prompt %s: %s in %.2f s (%d nodes ran, %d cached)", job.prompt_id, state,
                 seconds, ran, len(report) - ran)


def outcome_to_history(outcome: ExecutionOutcome, job: Job) -> tuple[str, dict[str, Any]]:
    """Turn an ExecutionOutcome into the stored history body (ComfyUI shape plus `lg`)."""
    if outcome.status == "interrupted":
        state = "cancelled" if job.cancel_requested else "interrupted"
    elif outcome.status == "success":
        state = "success"
    else:
        state = "error"
    messages = [[event, data] for event, data in outcome.messages]
    outputs = outcome.outputs
    lg: dict[str, Any] = {"state": state, "run_report": outcome.run_report}
    if outcome.error:
        lg["error"] = outcome.error
    meta = {node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None,
                      "real_node_id": node_id} for node_id in outputs}
    return state, {"outputs": outputs,
                   "status": {"status_str": "success" if state == "success" else "error",
                              "completed": state == "success", "messages": messages},
                   "meta": meta, "lg": lg}


def plain_error_message(exc: BaseException) -> str:
    """Message for a failure outside any node (the engine words node failures itself)."""
    if is_out_of_memory(exc):
        return failure_message(exc)  # the engine's out-of-memory advice, plus the details
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def crash_to_history(exc: BaseException, job: Job) -> tuple[str, dict[str, Any]]:
    """History body when the executor itself raised (it normally reports node errors itself)."""
    data = {"prompt_id": job.prompt_id, "node_id": job.current_node, "node_type": None,
            "executed": [], "exception_message": plain_error_message(exc),
            "exception_type": type(exc).__name__, "traceback": [], "current_inputs": {},
            "current_outputs": [], "timestamp": int(time.time() * 1000)}
    return "error", {"outputs": {}, "status": {"status_str": "error", "completed": False,
                                               "messages": [["execution_error", data]]},
                     "meta": {}, "lg": {"state": "error", "run_report": {},
                                        "error": {"message": data["exception_message"],
                                                  "type": data["exception_type"]}}}
