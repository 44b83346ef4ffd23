"""What the official ComfyUI frontend reads besides the core API: /jobs (its queue panel and
history), /i18n, /global_subgraphs, /internal/folder_paths, /experiment/models, and the
websocket staying free of our `lg.*` events unless a client asks for them."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.server.harness import ServerThread, chain_prompt

JOB_KEYS = {"id", "status", "priority", "create_time", "execution_start_time",
            "execution_end_time", "preview_output", "outputs_count", "execution_error",
            "workflow_id"}


def _save_prompt(value: int) -> dict:
    return {"1": {"class_type": "TestSaveSquare",
                  "inputs": {"value": value, "filename_prefix": f"jobs{value}"}}}


def _fail_prompt() -> dict:
    return {"1": {"class_type": "TestFail", "inputs": {"kind": "value"}},
            "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}


@pytest.fixture()
def finished_jobs(server: ServerThread) -> dict[str, str]:
    server.post("/history", {"clear": True})
    workflow = {"id": "wf-" + uuid.uuid4().hex, "nodes": [], "links": []}
    ok = server.queue_prompt(_save_prompt(7), extra_data={"extra_pnginfo": {"workflow": workflow}})
    server.wait_history(ok)
    failed = server.queue_prompt(_fail_prompt())
    server.wait_history(failed)
    return {"ok": ok, "failed": failed, "workflow_id": workflow["id"]}


def test_jobs_list_shapes_match_the_frontend_schema(server, finished_jobs) -> None:
    body = server.get("/api/jobs?status=completed,failed,cancelled&limit=10&offset=0").json()
    assert body["pagination"] == {"offset": 0, "limit": 10, "total": 2, "has_more": False}
    by_id = {job["id"]: job for job in body["jobs"]}
    assert [job["id"] for job in body["jobs"]] == [finished_jobs["failed"], finished_jobs["ok"]]
    ok = by_id[finished_jobs["ok"]]
    assert JOB_KEYS <= set(ok)
    assert ok["status"] == "completed" and ok["outputs_count"] == 1
    assert ok["preview_output"] == {"filename": "jobs7_00007_.png", "subfolder": "",
                                    "type": "output", "nodeId": "1", "mediaType": "images"}
    assert ok["workflow_id"] == finished_jobs["workflow_id"]
    assert ok["execution_error"] is None
    # milliseconds, in order: queued <= started <= finished, and close to now
    assert ok["create_time"] <= ok["execution_start_time"] <= ok["execution_end_time"]
    assert abs(ok["execution_end_time"] / 1000 - time.time()) < 120
    failed = by_id[finished_jobs["failed"]]
    assert failed["status"] == "failed" and failed["outputs_count"] == 0
    error = failed["execution_error"]
    assert error["node_id"] == "1" and error["node_type"] == "TestFail"
    assert "always fails" in error["exception_message"]
    assert isinstance(error["traceback"], list)


def test_jobs_filters_sorting_and_pages(server, finished_jobs) -> None:
    completed = server.get("/jobs?status=completed").json()
    assert [job["id"] for job in completed["jobs"]] == [finished_jobs["ok"]]
    oldest_first = server.get("/jobs?status=completed,failed&sort_order=asc").json()
    assert [job["id"] for job in oldest_first["jobs"]] == [finished_jobs["ok"],
                                                             finished_jobs["failed"]]
    first = server.get("/jobs?status=completed,failed&limit=1").json()
    second = server.get("/jobs?status=completed,failed&limit=1&offset=1").json()
    assert first["pagination"]["has_more"] is True and second["pagination"]["has_more"] is False
    assert first["jobs"][0]["id"] != second["jobs"][0]["id"]
    by_workflow = server.get(f"/jobs?workflow_id={finished_jobs['workflow_id']}").json()
    assert [job["id"] for job in by_workflow["jobs"]] == [finished_jobs["ok"]]
    assert server.get("/jobs?status=completed&sort_by=execution_duration").status == 200
    for bad in ("status=done", "sort_by=name", "sort_order=up", "limit=0", "offset=-1"):
        response = server.get(f"/jobs?{bad}")
        assert response.status == 400, bad
        assert response.json()["error"]["type"] == "invalid_parameter", bad


def test_jobs_show_running_and_pending_jobs(server: ServerThread) -> None:
    server.post("/history", {"clear": True})
    server.post("/api/lg/queue/pause")
    try:
        first = server.queue_prompt(chain_prompt(1))
        second = server.queue_prompt(chain_prompt(2))
        front = server.queue_prompt(chain_prompt(3), front=True)
        pending = server.get("/jobs?status=in_progress,pending").json()
        assert {job["id"] for job in pending["jobs"]} == {first, second, front}
        assert all(job["status"] == "pending" and job["execution_start_time"] is None
                   for job in pending["jobs"])
        assert pending["pagination"]["total"] == 3
        front_job = next(job for job in pending["jobs"] if job["id"] == front)
        assert front_job["priority"] < 0  # queued to the front: runs first
        assert server.get("/jobs?status=completed").json()["jobs"] == []
    finally:
        server.post("/api/lg/queue/resume")
    socket = server.websocket()
    slow = server.queue_prompt(chain_prompt(4, seconds=1.0), socket.sid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = server.get("/jobs?status=in_progress").json()["jobs"]
        if running and running[0]["id"] == slow:
            assert running[0]["execution_start_time"] is not None
            break
        time.sleep(0.02)
    else:
        pytest.fail("the slow job never showed as in_progress")
    socket.until_done(slow)
    socket.close()


def test_job_detail_carries_prompt_outputs_and_status(server, finished_jobs) -> None:
    detail = server.get(f"/api/jobs/{finished_jobs['ok']}").json()
    assert detail["id"] == finished_jobs["ok"] and detail["status"] == "completed"
    assert detail["workflow"]["prompt"] == _save_prompt(7)
    assert detail["workflow"]["extra_data"]["extra_pnginfo"]["workflow"]["id"] == \
        finished_jobs["workflow_id"]
    assert detail["outputs"]["1"]["images"][0]["filename"] == "jobs7_00007_.png"
    assert detail["execution_status"]["status_str"] == "success"
    missing = server.get("/api/jobs/no-such-job")
    assert missing.status == 404 and missing.json()["error"]["type"] == "unknown_job"


def test_cancelled_jobs_are_listed_as_cancelled(server: ServerThread) -> None:
    server.post("/history", {"clear": True})
    server.post("/api/lg/queue/pause")
    try:
        waiting = server.queue_prompt(chain_prompt(5))
        assert server.post(f"/api/lg/jobs/{waiting}/cancel").status == 200
    finally:
        server.post("/api/lg/queue/resume")
    jobs = server.get("/jobs?status=cancelled").json()["jobs"]
    assert [(job["id"], job["status"]) for job in jobs] == [(waiting, "cancelled")]


def test_i18n_merges_pack_locales(server: ServerThread, base_dir: Path) -> None:
    assert server.get("/api/i18n").json() == {}
    for pack, text in (("pack_a", "Alpha"), ("pack_b", "Beta")):
        lang = base_dir / "custom_nodes" / pack / "locales" / "zh"
        lang.mkdir(parents=True)
        (lang / "main.json").write_text(json.dumps({"g": {pack: text}}), encoding="utf-8")
        (lang / "nodeDefs.json").write_text(json.dumps({f"Node{pack}": {"display_name": text}}),
                                            encoding="utf-8")
    (base_dir / "custom_nodes" / "pack_b" / "locales" / "zh" / "settings.json").write_text(
        "not json", encoding="utf-8")
    merged = server.get("/api/i18n").json()
    assert merged == {"zh": {"g": {"pack_a": "Alpha", "pack_b": "Beta"},
                             "nodeDefs": {"Nodepack_a": {"display_name": "Alpha"},
                                          "Nodepack_b": {"display_name": "Beta"}}}}


def test_global_subgraphs_and_folder_paths(server: ServerThread, base_dir: Path) -> None:
    assert server.get("/api/global_subgraphs").json() == {}
    folders = server.get("/internal/folder_paths").json()
    assert folders["checkpoints"] == [str((base_dir / "models" / "checkpoints").resolve())]
    assert folders["text_encoders"][:2] == [str((base_dir / "models" / d).resolve())
                                            for d in ("text_encoders", "clip")]
    assert server.get("/api/internal/folder_paths").json() == folders


def test_experiment_models(server: ServerThread, base_dir: Path) -> None:
    listing = server.get("/api/experiment/models").json()
    names = [entry["name"] for entry in listing]
    assert "checkpoints" in names and "loras" in names and "configs" not in names
    loras = next(entry for entry in listing if entry["name"] == "loras")
    assert loras["folders"] == [str((base_dir / "models" / "loras").resolve())]

    target = base_dir / "models" / "loras" / "style" / "ink.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x" * 123)
    (base_dir / "models" / "loras" / "notes.txt").write_text("not a model")
    files = server.get("/api/experiment/models/loras").json()
    assert [(f["name"], f["pathIndex"], f["size"]) for f in files] == \
        [("style/ink.safetensors", 0, 123)]
    assert files[0]["modified"] == pytest.approx(target.stat().st_mtime)
    assert server.get("/api/experiment/models/loras").json() == files
    assert [f["name"] for f in files] == server.get("/models/loras").json()
    missing = server.get("/api/experiment/models/not_a_folder")
    assert missing.status == 404


def test_lg_events_reach_only_clients_that_ask(server: ServerThread) -> None:
    plain = server.websocket()
    ours = server.websocket(feature_flags={"supports_preview_metadata": True, "lg_events": True})
    assert ours.next_text()["type"] == "feature_flags"
    watcher_id = plain.sid
    # the same client id on two sockets: one asked for lg events, the other did not
    twin = server.websocket(client_id=watcher_id, feature_flags={"lg_events": True})
    assert twin.next_text()["type"] == "feature_flags"
    prompt_id = server.queue_prompt(chain_prompt(9), watcher_id)
    plain_events = [m["type"] for m in plain.until_done(prompt_id)]
    twin_events = [m["type"] for m in twin.until_done(prompt_id)]
    assert "executed" in plain_events
    assert not [name for name in plain_events if name.startswith("lg.")]
    assert "lg.run_report" in twin_events
    own = server.queue_prompt(chain_prompt(10), ours.sid)
    assert "lg.run_report" in [m["type"] for m in ours.until_done(own)]
    for socket in (plain, ours, twin):
        socket.close()


def test_workflow_templates_of_packs(server: ServerThread, base_dir: Path) -> None:
    assert server.get("/api/workflow_templates").json() == {}
    examples = base_dir / "custom_nodes" / "pack_t" / "example_workflows"
    examples.mkdir(parents=True)
    (examples / "upscale.json").write_text('{"nodes": []}', encoding="utf-8")
    (examples / "readme.txt").write_text("not a workflow", encoding="utf-8")
    assert server.get("/api/workflow_templates").json() == {"pack_t": ["upscale"]}
    served = server.get("/api/workflow_templates/pack_t/upscale.json")
    assert served.status == 200 and served.json() == {"nodes": []}
    for bad in ("pack_t/readme.txt", "pack_t/missing.json", "..%2F..%2Fsecret.json"):
        assert server.get(f"/api/workflow_templates/{bad}").status == 404, bad
