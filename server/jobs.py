"""The job queue: priority order, per-job interrupt flags, cancel and re-prioritise by id.

The SQLite store is the source of truth; this class keeps the pending jobs in memory too, so the
worker can pick the next one and `/queue` can answer without touching the disk. Any thread may
call it (request handlers run on the event loop, the worker on its own thread); one condition
variable guards the in-memory state and wakes the worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.interrupt import InterruptFlag

from server.store import JobStore, StoredJob

# extra_data keys that carry credentials: used while running, never written to disk or history.
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass
class Job:
    """A queued prompt plus what only exists while this process lives."""

    stored: StoredJob
    interrupt: InterruptFlag = field(default_factory=InterruptFlag)
    secrets: dict[str, Any] = field(default_factory=dict)
    cancel_requested: bool = False
    current_node: str | None = None
    progress_state: dict[str, Any] | None = None  # last one sent, replayed to a reconnecting tab

    @property
    def prompt_id(self) -> str:
        return self.stored.prompt_id

    @property
    def client_id(self) -> str | None:
        return self.stored.client_id

    def run_extra_data(self) -> dict[str, Any]:
        return {**self.stored.extra_data, **self.secrets}


class JobQueue:
    """Pending jobs in priority order (lowest number first, then arrival), persisted."""

    def __init__(self, store: JobStore, on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._pending: dict[str, Job] = {job.prompt_id: Job(job) for job in store.pending()}
        self._running: Job | None = None
        self._counter = int(store.max_number()) + 1
        self._closed = False
        self._paused = False
        self._wake_reasons: set[str] = set()
        self.on_change = on_change or (lambda: None)

    # -- numbering ---------------------------------------------------------------------------
    def next_number(self, front: bool) -> float:
        """ComfyUI's rule: a running counter; `front` puts the job ahead of everything queued."""
        with self._cond:
            number = self._counter
            self._counter += 1
        return float(-number if front else number)

    # -- producers ---------------------------------------------------------------------------
    def put(self, stored: StoredJob, secrets: dict[str, Any] | None = None) -> Job:
        job = Job(stored, secrets=dict(secrets or {}))
        self.store.add(stored)
        with self._cond:
            self._pending[job.prompt_id] = job
            self._cond.notify_all()
        self.on_change()
        return job

    def knows(self, prompt_id: str) -> bool:
        with self._cond:
            if prompt_id in self._pending or (self._running and self._running.prompt_id == prompt_id):
                return True
        return self.store.exists(prompt_id)

    # -- the worker's side ---------------------------------------------------------------------
    def take(self, timeout: float | None = None) -> Job | None:
        """Block until a job is pending (or a wake-up is requested) and mark it running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (not self._pending or self._paused) and not self._closed \
                    and not self._wake_reasons:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._pending or self._closed or self._paused:
                return None
            job = min(self._pending.values(), key=lambda j: (j.stored.number, j.stored.seq))
            del self._pending[job.prompt_id]
            self._running = job
            job.stored.state, job.stored.started = "running", time.time()
        self.store.mark_running(job.prompt_id, job.stored.started)
        self.on_change()
        return job

    def finish(self, job: Job, state: str, result: dict[str, Any]) -> None:
        now = time.time()
        try:
            self.store.finish(job.prompt_id, state, result, now)
        finally:  # even if the disk write fails, the queue must move on
            with self._cond:
                if self._running is job:
                    self._running = None
                job.stored.state, job.stored.finished, job.stored.result = state, now, result
            self.on_change()

    def wake(self, reason: str) -> None:
        """Make a blocked `take` return so the worker can act on `reason` (e.g. /free)."""
        with self._cond:
            self._wake_reasons.add(reason)
            self._cond.notify_all()

    def pop_wake_reasons(self) -> set[str]:
        with self._cond:
            reasons, self._wake_reasons = self._wake_reasons, set()
        return reasons

    def set_paused(self, paused: bool) -> None:
        """Paused: the running job finishes, nothing new starts until resumed (not persisted)."""
        with self._cond:
            self._paused = paused
            self._cond.notify_all()
        self.on_change()

    @property
    def paused(self) -> bool:
        return self._paused

    def close(self) -> None:
        with self._cond:
            self._closed = True
            if self._running:
                self._running.interrupt.set()
            self._cond.notify_all()

    # -- queries -------------------------------------------------------------------------------
    def running(self) -> Job | None:
        with self._cond:
            return self._running

    def pending_jobs(self) -> list[Job]:
        with self._cond:
            return sorted(self._pending.values(), key=lambda j: (j.stored.number, j.stored.seq))

    def remaining(self) -> int:
        with self._cond:
            return len(self._pending) + (1 if self._running else 0)

    def find_active(self, prompt_id: str) -> Job | None:
        with self._cond:
            if self._running and self._running.prompt_id == prompt_id:
                return self._running
            return self._pending.get(prompt_id)

    # -- control ---------------------------------------------------------------------------------
    def delete_pending(self, prompt_ids: list[str]) -> list[Job]:
        with self._cond:
            removed = [self._pending.pop(pid) for pid in prompt_ids if pid in self._pending]
        if removed:
            self.store.remove_pending([job.prompt_id for job in removed])
            self.on_change()
        return removed

    def clear_pending(self) -> list[Job]:
        with self._cond:
            ids = list(self._pending)
        return self.delete_pending(ids)

    def interrupt(self, prompt_id: str | None = None) -> Job | None:
        """Interrupt the running job (only if it is `prompt_id`, when one is given)."""
        with self._cond:
            job = self._running
            if job is None or (prompt_id is not None and job.prompt_id != prompt_id):
                return None
            job.interrupt.set()
            return job

    def cancel(self, prompt_id: str) -> tuple[str, Job | None]:
        """Cancel by id: a pending job leaves the queue (recorded in history as cancelled), a
        running one is interrupted. Returns ('cancelled'|'interrupting'|'finished'|'unknown', job)."""
        with self._cond:
            running = self._running if self._running and self._running.prompt_id == prompt_id else None
            if running is not None:
                running.cancel_requested = True
                running.interrupt.set()
                return "interrupting", running
            job = self._pending.pop(prompt_id, None)
        if job is None:
            stored = self.store.get(prompt_id)
            return ("finished" if stored else "unknown"), None
        job.cancel_requested = True
        self.finish(job, "cancelled", cancelled_result(job))
        return "cancelled", job

    def set_number(self, prompt_id: str, number: float) -> Job | None:
        """Change a pending job's priority; None if it is not pending."""
        with self._cond:
            job = self._pending.get(prompt_id)
            if job is None:
                return None
            job.stored.number = number
        self.store.set_number(prompt_id, number)
        self.on_change()
        return job


def cancelled_result(job: Job) -> dict[str, Any]:
    """History body for a job cancelled before it started."""
    message = ["execution_interrupted", {
        "prompt_id": job.prompt_id, "node_id": None, "node_type": None, "executed": [],
        "timestamp": int(time.time() * 1000)}]
    return {"outputs": {}, "status": {"status_str": "error", "completed": False,
                                      "messages": [message]},
            "meta": {}, "lg": {"state": "cancelled", "reason": "Cancelled before it started.",
                               "run_report": {}}}
