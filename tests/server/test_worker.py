"""The worker tells a client a job is over only after its history row is committed.

The hub below checks, at the moment each event is posted, what a *separate* SQLite connection
(another process, or the database after a kill) can see: a closing event for a job whose row is
not yet committed as finished would be a result a crash could still lose.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from server.jobs import JobQueue
from server.store import TERMINAL_STATES, JobStore, StoredJob
from engine.failures import OUT_OF_MEMORY_ADVICE
from server.worker import Worker

DONE_SIGNALS = ("lg.run_report", "execution_success", "execution_error", "execution_interrupted")


class RecordingHub:
    """Stands in for WebSocketHub: runs posted sends at once and records the committed state."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    def post(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def status_changed(self) -> None:
        pass

    def send_preview(self, *args: Any) -> None:
        pass

    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        prompt_id = data.get("prompt_id")
        state = None
        if prompt_id is not None:
            with sqlite3.connect(self.database) as other:  # sees committed rows only
                row = other.execute("SELECT state FROM jobs WHERE prompt_id=?",
                                    (prompt_id,)).fetchone()
            state = row[0] if row else None
        self.sent.append((event, {**data, "_committed_state": state}, sid))


class ScriptedExecutor:
    """Emits a fixed event sequence, as Executor.execute does, then returns the outcome."""

    def __init__(self, status: str, events: list[tuple[str, dict[str, Any]]],
                 raises: BaseException | None = None) -> None:
        self.status, self.events, self.raises = status, events, raises

    def execute(self, prompt, prompt_id, listener, **_: Any) -> Any:
        messages = []
        for event, data in self.events:
            data = {**data, "prompt_id": prompt_id}
            listener.on_event(event, data)
            if event.startswith("execution_"):
                messages.append([event, data])
        if self.raises is not None:
            raise self.raises
        error = messages[-1][1] if self.status == "error" else None
        return SimpleNamespace(status=self.status, outputs={}, messages=messages,
                               run_report={"1": {"state": "ran", "reason": "new"}}, error=error)


def run_one(tmp_path: Path, executor: ScriptedExecutor) -> tuple[RecordingHub, str]:
    database = tmp_path / "q.sqlite3"
    queue = JobQueue(JobStore(database))
    hub = RecordingHub(database)
    worker = Worker(queue, hub, executor, lambda unload, free: None)  # type: ignore[arg-type]
    queue.put(StoredJob(prompt_id="p1", number=0.0, prompt={"1": {}}, extra_data={},
                        outputs_to_execute=["1"], client_id="tab"))
    job = queue.take(0)
    assert job is not None
    worker._run_job(job)
    queue.store.close()
    return hub, "p1"


RUNNING = [("execution_start", {}), ("executing", {"node": "1"}),
           ("progress_state", {"nodes": {}})]


@pytest.mark.parametrize("status, closing", [
    ("success", [("lg.run_report", {"nodes": {}}), ("execution_success", {})]),
    ("error", [("execution_error", {"node_id": "1", "exception_message": "boom",
                                    "exception_type": "ValueError"})]),
    ("interrupted", [("execution_interrupted", {"node_id": "1"})]),
])
def test_done_is_announced_only_after_the_history_row_is_committed(
        tmp_path: Path, status: str, closing: list) -> None:
    hub, prompt_id = run_one(tmp_path, ScriptedExecutor(status, RUNNING + closing))
    events = [event for event, _, _ in hub.sent]
    # same events, same order as the engine produced them, then the closing `executing`
    assert events == [e for e, _ in RUNNING + closing] + ["executing"]
    assert hub.sent[-1][1]["node"] is None
    assert all(sid == "tab" for _, _, sid in hub.sent)
    for event, data, _ in hub.sent:
        done = event in DONE_SIGNALS or (event == "executing" and data.get("node") is None)
        if done:
            assert data["_committed_state"] in TERMINAL_STATES, event
        else:  # while running, nothing claims it is over
            assert data["_committed_state"] == "running", event


def test_an_executor_crash_is_reported_after_the_commit_too(tmp_path: Path) -> None:
    hub, _ = run_one(tmp_path, ScriptedExecutor("success", RUNNING, raises=MemoryError()))
    [error] = [data for event, data, _ in hub.sent if event == "execution_error"]
    assert error["_committed_state"] == "error"
    assert error["exception_message"].startswith(OUT_OF_MEMORY_ADVICE)
    assert [e for e, _, _ in hub.sent][-2:] == ["execution_error", "executing"]
