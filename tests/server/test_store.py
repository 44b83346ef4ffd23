"""The persistent queue on its own: ordering, priorities, crash recovery, history limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import store as store_module
from server.jobs import JobQueue
from server.store import JobStore, StoredJob


def _job(prompt_id: str, number: float) -> StoredJob:
    return StoredJob(prompt_id=prompt_id, number=number, prompt={"1": {}}, extra_data={},
                     outputs_to_execute=["1"])


def test_jobs_run_by_number_then_arrival_and_front_goes_first(tmp_path: Path) -> None:
    queue = JobQueue(JobStore(tmp_path / "q.sqlite3"))
    for name in ("a", "b"):
        queue.put(_job(name, queue.next_number(front=False)))
    queue.put(_job("c", queue.next_number(front=True)))
    queue.put(_job("d", 1.0))  # same number as b: arrival order breaks the tie
    assert [j.prompt_id for j in queue.pending_jobs()] == ["c", "a", "b", "d"]
    assert [queue.take(0).prompt_id for _ in range(4)] == ["c", "a", "b", "d"]
    assert queue.take(0.01) is None


def test_reopening_keeps_pending_jobs_and_numbers_continue(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    first = JobQueue(JobStore(path))
    first.put(_job("a", first.next_number(False)))
    first.put(_job("b", first.next_number(False)))
    running = first.take(0)
    assert running is not None and running.prompt_id == "a"
    first.store.close()

    store = JobStore(path)
    failed = store.recover_after_crash()
    assert [job.prompt_id for job in failed] == ["a"]
    assert store.recover_after_crash() == []  # never twice, never re-queued
    second = JobQueue(store)
    assert [j.prompt_id for j in second.pending_jobs()] == ["b"]
    assert second.next_number(False) == 2.0
    entry = store.get("a")
    assert entry is not None and entry.state == "failed"
    assert entry.result["status"]["messages"][0][1]["exception_type"] == "ServerStopped"


def test_history_is_trimmed_to_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "HISTORY_LIMIT", 3)
    store = JobStore(tmp_path / "q.sqlite3")
    for index in range(5):
        store.add(_job(f"j{index}", index))
        store.finish(f"j{index}", "success", {"outputs": {}}, float(index))
    assert [job.prompt_id for job in store.history()] == ["j2", "j3", "j4"]
    assert [job.prompt_id for job in store.history(max_items=1, offset=1)] == ["j3"]


def test_cancel_pending_records_it_and_running_sets_its_flag(tmp_path: Path) -> None:
    queue = JobQueue(JobStore(tmp_path / "q.sqlite3"))
    queue.put(_job("run", 0))
    queue.put(_job("wait", 1))
    running = queue.take(0)
    assert running is not None
    assert queue.cancel("wait")[0] == "cancelled"
    assert queue.store.get("wait").state == "cancelled"
    assert queue.cancel("run")[0] == "interrupting" and running.interrupt.is_set()
    assert queue.cancel("nothing")[0] == "unknown"
    assert queue.interrupt("other") is None


def test_a_second_server_cannot_open_the_same_queue(tmp_path: Path) -> None:
    from server.store import StoreInUseError

    first = JobStore(tmp_path / "q.sqlite3")
    first.add(_job("running", 0))
    first.mark_running("running", 1.0)
    with pytest.raises(StoreInUseError, match="another Latentgraph server"):
        JobStore(tmp_path / "q.sqlite3")
    assert first.get("running").state == "running"  # not mistaken for a crash
    first.close()
    reopened = JobStore(tmp_path / "q.sqlite3")
    assert [job.prompt_id for job in reopened.recover_after_crash()] == ["running"]
    reopened.close()


def test_finishing_a_job_is_an_fsynced_commit_and_other_changes_stay_cheap(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "q.sqlite3")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.add(_job("a", 0.0))
    store.mark_running("a", 1.0)
    assert not any("synchronous" in s for s in statements)  # NORMAL: survives a kill, no fsync
    statements.clear()
    store.finish("a", "success", {"outputs": {}}, 2.0)
    assert statements[0] == "PRAGMA synchronous=FULL" and statements[1] == "BEGIN IMMEDIATE"
    assert statements.index("COMMIT") < statements.index("PRAGMA synchronous=NORMAL")
    store._db.set_trace_callback(None)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL
    store.close()
    reopened = JobStore(tmp_path / "q.sqlite3")
    assert reopened.get("a").state == "success"
    reopened.close()
