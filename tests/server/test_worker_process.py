"""Prompts run in a worker process: crashes fail one job, the server and its clients carry on."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from server.context import ServerConfig
from server.workers.recipe import RuntimeRecipe
from tests.server.crashpack import make_crash_runtime
from tests.server.harness import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("lgworker")
    recipe = RuntimeRecipe("tests.server.crashpack:make_crash_runtime", (base,))
    config = ServerConfig(port=0, web_root=base / "no-editor", worker_recipe=recipe)
    with ServerThread(make_crash_runtime(base), config) as running:
        yield running


def pid_prompt(value: int) -> dict:
    return {"1": {"class_type": "TestWorkerPid", "inputs": {"value": value}}}


def crash_prompt(how: str) -> dict:
    return {"1": {"class_type": "TestCrash", "inputs": {"how": how, "value": 0}},
            "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}


def sleep_prompt(seconds: float, value: int) -> dict:
    return {"1": {"class_type": "TestSleep", "inputs": {"value": value, "seconds": seconds}},
            "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}


def run_pid(server: ServerThread, value: int) -> int:
    entry = server.wait_history(server.queue_prompt(pid_prompt(value)), timeout=120)
    assert entry["status"]["status_str"] == "success", entry
    return entry["outputs"]["1"]["pid"][0]


def worker_info(server: ServerThread) -> dict:
    [worker] = server.get("/system_stats").json()["workers"]
    return worker


def test_prompts_run_in_another_process_with_the_usual_events(server):
    pid = run_pid(server, 1)
    assert pid != os.getpid() and worker_info(server)["pid"] == pid
    socket = server.websocket()
    try:
        prompt_id = server.queue_prompt(sleep_prompt(0.1, 7), client_id=socket.sid)
        kinds = [m["type"] for m in socket.until_done(prompt_id)]
    finally:
        socket.close()
    assert kinds[0] == "execution_start" and kinds[-2:] == ["execution_success", "executing"]
    assert "progress" in kinds and "executed" in kinds
    assert run_pid(server, 2) == pid  # the same warm worker keeps serving


@pytest.mark.parametrize("how, cause", [("segfault", "SIGSEGV"), ("os_exit", "exited with code 3")])
def test_a_worker_that_dies_fails_its_job_and_the_next_job_runs(server, how, cause):
    before = run_pid(server, 10)
    socket = server.websocket()
    try:
        prompt_id = server.queue_prompt(crash_prompt(how), client_id=socket.sid)
        messages = socket.until_done(prompt_id, timeout=120)
        errors = [m["data"] for m in messages if m["type"] == "execution_error"]
        assert len(errors) == 1 and cause in errors[0]["exception_message"]
        assert errors[0]["exception_type"] == "WorkerLost"
        entry = server.wait_history(prompt_id)
        assert entry["status"]["status_str"] == "error"
        # the client stayed connected through the crash and sees the next job too
        next_id = server.queue_prompt(pid_prompt(11), client_id=socket.sid)
        assert socket.until_done(next_id, timeout=120)[-2]["type"] == "execution_success"
    finally:
        socket.close()
    after = server.wait_history(next_id)["outputs"]["1"]["pid"][0]
    assert after != before
    assert worker_info(server)["restarts"] >= 1


def test_sys_exit_in_a_node_is_an_ordinary_node_error(server):
    pid = run_pid(server, 20)
    entry = server.wait_history(server.queue_prompt(crash_prompt("sys_exit")), timeout=120)
    assert entry["status"]["status_str"] == "error"
    assert run_pid(server, 21) == pid  # SystemExit is caught; the worker lives on


def test_kill_9_of_the_worker_mid_job(server):
    pid = run_pid(server, 30)
    prompt_id = server.queue_prompt(sleep_prompt(30, 31))
    deadline = time.monotonic() + 30
    while server.get(f"/lg/jobs/{prompt_id}").json().get("state") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    entry = server.wait_history(prompt_id, timeout=30)
    message = entry["status"]["messages"][-1][1]["exception_message"]
    assert "SIGKILL" in message and "out-of-memory" in message
    assert run_pid(server, 32) != pid


def test_interrupt_reaches_the_worker(server):
    run_pid(server, 40)  # warm
    prompt_id = server.queue_prompt(sleep_prompt(60, 41))
    deadline = time.monotonic() + 30
    while server.get(f"/lg/jobs/{prompt_id}").json().get("state") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    asked = time.monotonic()
    assert server.post("/interrupt", {}).status == 200
    entry = server.wait_history(prompt_id, timeout=30)
    assert time.monotonic() - asked < 5
    assert entry["lg"]["state"] == "interrupted"


def test_free_reaches_the_worker_and_cache_stats_come_from_it(server):
    run_pid(server, 50)
    run_pid(server, 50)  # cached
    stats = server.get("/lg/cache").json()
    assert stats["entries"] > 0
    assert server.post("/free", {"free_memory": True}).status == 200
    deadline = time.monotonic() + 30
    while server.get("/lg/cache").json()["entries"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.get("/lg/cache").json()["entries"] == 0
