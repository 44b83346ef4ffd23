"""SQLite persistence for the job queue and history, so a restart or crash loses nothing.

One table holds every job from the moment it is queued; its `state` moves from `pending` to
`running` to a terminal state (`success`, `error`, `interrupted`, `cancelled`, `failed`). The
history is simply the terminal rows, ordered by when they finished. Every change is one
transaction (WAL journal), so a SIGKILL at any point leaves a consistent database; finishing a
job commits with synchronous=FULL, so a job reported done is on disk even after a power loss.
A job found `running` when the store opens was running when the process died: it is marked
`failed` with that reason and never re-run automatically (a job that crashes the process must
not become a crash loop).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from server.jsonsafe import dumps

TERMINAL_STATES = ("success", "error", "interrupted", "cancelled", "failed")
HISTORY_LIMIT = 10_000
CRASH_REASON = ("The server stopped while this job was running (crash, kill or power loss). "
                "It was not re-run automatically; queue it again if you want it.")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    number REAL NOT NULL,
    state TEXT NOT NULL,
    client_id TEXT,
    force INTEGER NOT NULL DEFAULT 0,
    prompt TEXT NOT NULL,
    extra_data TEXT NOT NULL,
    outputs_to_execute TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    history_seq INTEGER,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, number, seq);
CREATE INDEX IF NOT EXISTS jobs_by_history ON jobs(history_seq);
"""


@dataclass
class StoredJob:
    """One queued prompt as the store knows it (no runtime objects such as interrupt flags)."""

    prompt_id: str
    number: float
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs_to_execute: list[str]
    client_id: str | None = None
    force: bool = False
    state: str = "pending"
    seq: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None

    def queue_item(self) -> list[Any]:
        """ComfyUI's 5-tuple `[number, prompt_id, prompt, extra_data, outputs_to_execute]`."""
        return [_plain_number(self.number), self.prompt_id, self.prompt, self.extra_data,
                self.outputs_to_execute]


def _plain_number(number: float) -> int | float:
    """Queue numbers are floats internally; show whole numbers as ints like ComfyUI does."""
    return int(number) if float(number).is_integer() else number


def _dumps(value: Any) -> str:
    return dumps(value, separators=(",", ":"))


class StoreInUseError(RuntimeError):
    """Another running server owns this queue database."""


class _ProcessLock:
    """An exclusive advisory lock on `<db>.lock`, held while the store is open, so a second
    server on the same base directory cannot mistake the first one's running job for a crash."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open("a+")
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one server per base dir is on the user
            return
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._handle.close()
            raise StoreInUseError(f"another Latentgraph server is using {path.parent}; stop it or "
                                  "start this one with a different --base-directory") from None

    def release(self) -> None:
        self._handle.close()  # closing the file drops the lock


class JobStore:
    """Thread-safe access to the jobs database (one connection, one lock, short transactions)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._process_lock = _ProcessLock(path.with_name(path.name + ".lock"))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL (WAL): a committed change survives a process kill but may be lost on power
        # loss. Finishing a job, which is announced to clients right after (server.worker),
        # commits with FULL instead: that fsync also covers every change committed before it.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._history_seq = self._scalar("SELECT COALESCE(MAX(history_seq), 0) FROM jobs")

    # -- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._process_lock.release()

    def _scalar(self, sql: str, *params: Any) -> Any:
        with self._lock:
            return self._db.execute(sql, params).fetchone()[0]

    def _transaction(self, durable: bool = False) -> "_Transaction":
        return _Transaction(self._db, self._lock, durable)

    @staticmethod
    def _row_to_job(row: sqlite3.Row) -> StoredJob:
        return StoredJob(
            prompt_id=row["prompt_id"], number=row["number"], prompt=json.loads(row["prompt"]),
            extra_data=json.loads(row["extra_data"]),
            outputs_to_execute=json.loads(row["outputs_to_execute"]), client_id=row["client_id"],
            force=bool(row["force"]), state=row["state"], seq=row["seq"], created=row["created"],
            started=row["started"], finished=row["finished"],
            result=json.loads(row["result"]) if row["result"] else None)

    # -- start-up ---------------------------------------------------------------------------
    def recover_after_crash(self) -> list[StoredJob]:
        """Mark jobs left `running` by a dead process as failed; return them for logging."""
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM jobs WHERE state='running'").fetchall()
            failed = []
            for row in rows:
                job = self._row_to_job(row)
                now = time.time()
                job.result = crash_result(job, now)
                self._history_seq += 1
                db.execute("UPDATE jobs SET state='failed', finished=?, history_seq=?, result=? "
                           "WHERE seq=?", (now, self._history_seq, _dumps(job.result), job.seq))
                job.state, job.finished = "failed", now
                failed.append(job)
        return failed

    def max_number(self) -> float:
        """Largest |number| ever used, so new jobs are numbered after everything persisted."""
        value = self._scalar("SELECT MAX(ABS(number)) FROM jobs")
        return float(value) if value is not None else -1.0

    # -- queue ------------------------------------------------------------------------------
    def add(self, job: StoredJob) -> StoredJob:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO jobs (prompt_id, number, state, client_id, force, prompt, extra_data,"
                " outputs_to_execute, created) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (job.prompt_id, job.number, job.client_id, int(job.force), _dumps(job.prompt),
                 _dumps(job.extra_data), _dumps(job.outputs_to_execute), job.created))
            job.seq = int(cursor.lastrowid or 0)
        return job

    def exists(self, prompt_id: str) -> bool:
        return self._scalar("SELECT COUNT(*) FROM jobs WHERE prompt_id=?", prompt_id) > 0

    def pending(self) -> list[StoredJob]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state='pending' ORDER BY number, seq").fetchall()
        return [self._row_to_job(row) for row in rows]

    def mark_running(self, prompt_id: str, started: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state='running', started=? WHERE prompt_id=? AND "
                       "state='pending'", (started, prompt_id))

    def set_number(self, prompt_id: str, number: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET number=? WHERE prompt_id=? AND state='pending'",
                       (number, prompt_id))

    def remove_pending(self, prompt_ids: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM jobs WHERE prompt_id=? AND state='pending'",
                           [(pid,) for pid in prompt_ids])

    # -- history ----------------------------------------------------------------------------
    def finish(self, prompt_id: str, state: str, result: dict[str, Any], finished: float) -> None:
        """Record a terminal state atomically and trim the history to its size limit."""
        assert state in TERMINAL_STATES, state
        with self._transaction(durable=True) as db:
            self._history_seq += 1
            db.execute("UPDATE jobs SET state=?, finished=?, history_seq=?, result=? "
                       "WHERE prompt_id=?",
                       (state, finished, self._history_seq, _dumps(result), prompt_id))
            db.execute("DELETE FROM jobs WHERE history_seq IS NOT NULL AND history_seq <= ?",
                       (self._history_seq - HISTORY_LIMIT,))

    def history_count(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM jobs WHERE history_seq IS NOT NULL")

    def history(self, max_items: int | None = None, offset: int = 0) -> list[StoredJob]:
        """Finished jobs oldest first; `offset` skips, `max_items` limits (ComfyUI semantics)."""
        limit = -1 if max_items is None else max(0, max_items)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE history_seq IS NOT NULL ORDER BY history_seq "
                "LIMIT ? OFFSET ?", (limit, max(0, offset))).fetchall()
        return [self._row_to_job(row) for row in rows]

    def get(self, prompt_id: str) -> StoredJob | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE prompt_id=?", (prompt_id,)).fetchone()
        return self._row_to_job(row) if row else None

    def recent(self, limit: int) -> Iterator[StoredJob]:
        """Newest jobs first, whatever their state (for the job list)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?",
                                    (limit,)).fetchall()
        return (self._row_to_job(row) for row in rows)

    def finished_page(self, states: tuple[str, ...], limit: int, offset: int = 0,
                      by_duration: bool = False, newest_first: bool = True,
                      workflow_id: str | None = None) -> tuple[list[StoredJob], int]:
        """Finished jobs in `states`, one page of them plus the total (for GET /jobs).

        Ordered by queue time, or by run time (`by_duration`); `workflow_id` keeps the jobs
        whose editor workflow (extra_pnginfo.workflow.id) has that id."""
        if not states:
            return [], 0
        where = f"state IN ({','.join('?' * len(states))}) AND history_seq IS NOT NULL"
        params: list[Any] = list(states)
        if workflow_id is not None:
            where += " AND json_extract(extra_data, '$.extra_pnginfo.workflow.id') = ?"
            params.append(workflow_id)
        key = "COALESCE(finished - started, 0)" if by_duration else "created"
        direction = "DESC" if newest_first else "ASC"
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}",
                                     params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE {where} ORDER BY {key} {direction}, seq {direction} "
                "LIMIT ? OFFSET ?", (*params, max(0, limit), max(0, offset))).fetchall()
        return [self._row_to_job(row) for row in rows], int(total)

    def delete_history(self, prompt_ids: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM jobs WHERE prompt_id=? AND history_seq IS NOT NULL",
                           [(pid,) for pid in prompt_ids])

    def clear_history(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE history_seq IS NOT NULL")


class _Transaction:
    """`with store._transaction() as db:` — BEGIN IMMEDIATE … COMMIT under the store lock.

    `durable=True` commits with synchronous=FULL (the WAL is fsynced before COMMIT returns), for
    changes a client is told about as final; the connection goes back to NORMAL afterwards.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, durable: bool = False) -> None:
        self._db, self._lock, self._durable = db, lock, durable

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            if self._durable:
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._restore()
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            try:
                self._restore()
            finally:
                self._lock.release()

    def _restore(self) -> None:
        if self._durable:
            self._db.execute("PRAGMA synchronous=NORMAL")


def crash_result(job: StoredJob, now: float) -> dict[str, Any]:
    """The history entry body for a job that died with the process."""
    message = ["execution_error", {
        "prompt_id": job.prompt_id, "node_id": None, "node_type": None, "executed": [],
        "exception_message": CRASH_REASON, "exception_type": "ServerStopped", "traceback": [],
        "current_inputs": {}, "current_outputs": [], "timestamp": int(now * 1000)}]
    return {"outputs": {}, "status": {"status_str": "error", "completed": False,
                                      "messages": [message]},
            "meta": {}, "lg": {"state": "failed", "reason": CRASH_REASON, "run_report": {}}}


def finite_number(value: Any) -> float | None:
    """A JSON number usable as a queue priority, or None (bools and NaN/inf are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
