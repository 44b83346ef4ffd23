"""Kill the real server process (SIGKILL) with jobs queued: a restart keeps queue and history,
and the job that was running is marked failed with the reason instead of being re-run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from server.app import DATABASE_NAME
from server.store import JobStore
from tests.server.harness import REPO, chain_prompt, http_request, python

PACK = "from tests.server.nodepack import NODE_CLASS_MAPPINGS  # noqa: F401\nWEB_DIRECTORY = 'web'\n"


class ServerProcess:
    """`python main.py` on a free loopback port, stdout and stderr drained by threads.

    The start-up URL is read from stdout alone: log lines go to stderr from the worker thread,
    and sharing one pipe let them glue onto the URL line (a token ending in "INFO server…").
    """

    URL = re.compile(r"running at http://([0-9.]+):(\d+)/(?:\?token=([A-Za-z0-9_-]+))?$")

    def __init__(self, base: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
        self.proc = subprocess.Popen(
            [python(), "main.py", "--base-directory", str(base), "--port", "0", "--cpu",
             "--cache-ram", "0.25", *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.host, self.token = "127.0.0.1", None
        self.lines: list[str] = []
        self.port_found = threading.Event()
        self.port = 0
        threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True).start()
        if not self.port_found.wait(90):
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def _drain(self, stream, announces_url: bool) -> None:
        assert stream is not None
        for line in stream:
            self.lines.append(line)
            match = self.URL.search(line.rstrip("\n")) if announces_url else None
            if match and not self.port_found.is_set():
                self.host, self.port, self.token = match.group(1), int(match.group(2)), match.group(3)
                self.port_found.set()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str):
        return http_request(self.port, "GET", path, host=self.host, headers=self._auth())

    def post(self, path: str, body):
        return http_request(self.port, "POST", path, body, host=self.host, headers=self._auth())

    def queue(self, prompt, **extra) -> str:
        response = self.post("/prompt", {"prompt": prompt, **extra})
        assert response.status == 200, response.body
        return response.json()["prompt_id"]

    def wait(self, predicate, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError("condition not reached:\n" + "".join(self.lines[-20:]))

    def history(self, prompt_id: str):
        return self.get(f"/history/{prompt_id}").json().get(prompt_id)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    pack = tmp_path / "custom_nodes" / "server_testpack"
    (pack / "web").mkdir(parents=True)
    (pack / "__init__.py").write_text(PACK)
    (pack / "web" / "hello.js").write_text("console.log('hello from a pack');\n")
    return tmp_path


@pytest.mark.slow
def test_restart_keeps_queue_and_history_and_never_reruns_the_crashed_job(base: Path) -> None:
    first = ServerProcess(base)
    try:
        done = first.queue(chain_prompt(1))
        first.wait(lambda: first.history(done))
        running = first.queue(chain_prompt(2, seconds=120))
        first.wait(lambda: first.get("/queue").json()["queue_running"])
        later = first.queue(chain_prompt(3))
        front = first.queue(chain_prompt(4), front=True)
        pending = [item[1] for item in first.get("/queue").json()["queue_pending"]]
        assert pending == [front, later]
    finally:
        first.stop(signal.SIGKILL)

    # restart listening on an address other than 127.0.0.1: the printed token is then required
    second = ServerProcess(base, "--listen", "127.0.0.2")
    try:
        assert second.host == "127.0.0.2" and second.token and len(second.token) >= 24
        refused = http_request(second.port, "GET", "/queue", host=second.host)
        assert refused.status == 401 and refused.json()["error"]["type"] == "unauthorized"
        assert second.history(done)["status"]["status_str"] == "success"
        crashed = second.history(running)
        assert crashed["lg"]["state"] == "failed"
        assert "not re-run" in crashed["lg"]["reason"]
        error = crashed["status"]["messages"][-1]
        assert error[0] == "execution_error" and error[1]["exception_type"] == "ServerStopped"
        # the jobs that were waiting run after the restart, in their order
        finished = [second.wait(lambda pid=pid: second.history(pid)) for pid in (front, later)]
        assert [entry["status"]["status_str"] for entry in finished] == ["success", "success"]
        assert finished[0]["lg"]["finished_at"] <= finished[1]["lg"]["finished_at"]
        # the crashed job is not waiting to run again
        queue = second.get("/queue").json()
        assert queue == {"queue_running": [], "queue_pending": []}
        # the pack's web directory is served as an extension
        assert "/extensions/server_testpack/hello.js" in second.get("/extensions").json()
        script = second.get("/extensions/server_testpack/hello.js")
        assert script.status == 200 and b"hello from a pack" in script.body
        # a graceful stop (SIGTERM) interrupts the running job and records it as interrupted
        stopped = second.queue(chain_prompt(5, seconds=120))
        second.wait(lambda: second.get("/queue").json()["queue_running"])
    finally:
        assert second.stop(signal.SIGTERM) == 0
    store = JobStore(base / "user" / DATABASE_NAME)
    try:
        assert store.get(stopped).state == "interrupted"
        assert store.get(running).state == "failed"
    finally:
        store.close()
