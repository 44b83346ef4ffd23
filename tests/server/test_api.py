"""The ComfyUI-compatible API, spoken over real HTTP and websockets to a running server."""

from __future__ import annotations

import json
import struct
import time
import uuid

import pytest

from tests.server.harness import ServerThread, chain_prompt, names


def test_every_route_is_also_served_under_api(server: ServerThread) -> None:
    for path in ("/features", "/queue", "/history", "/object_info", "/models", "/embeddings",
                 "/system_stats", "/prompt", "/extensions", "/settings"):
        plain, prefixed = server.get(path), server.get("/api" + path)
        assert plain.status == prefixed.status == 200, path
        assert plain.json() == prefixed.json() or path == "/system_stats", path


def test_object_info_lists_registered_nodes_and_single_class(server: ServerThread) -> None:
    info = server.get("/object_info").json()
    assert {"TestNumber", "TestShow", "TestSleep"} <= set(info)
    one = server.get("/object_info/TestShow").json()
    assert one["TestShow"]["output_node"] is True
    assert server.get("/object_info/NoSuchNode").json() == {}


def test_models_listing_and_unknown_folder(server: ServerThread) -> None:
    assert "checkpoints" in server.get("/models").json()
    assert server.get("/models/checkpoints").json() == []
    missing = server.get("/models/not_a_folder")
    assert missing.status == 404 and missing.json()["error"]["type"] == "unknown_folder"


def test_invalid_prompts_get_structured_400(server: ServerThread) -> None:
    unknown = server.post("/prompt", {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}})
    assert unknown.status == 400
    assert unknown.json()["error"]["type"] == "invalid_prompt"
    assert server.post("/prompt", {}).json()["error"]["type"] == "no_prompt"
    bad_input = server.post("/prompt", {"prompt": {
        "1": {"class_type": "TestNumber", "inputs": {"value": "not a number"}},
        "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}})
    body = bad_input.json()
    assert bad_input.status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "invalid_input_type"


def test_full_event_sequence_then_everything_cached(server: ServerThread) -> None:
    socket = server.websocket()
    prompt = chain_prompt(7, seconds=0.05)
    first = server.queue_prompt(prompt, socket.sid)
    events = socket.until_done(first)
    sequence = names(events)
    assert sequence[:2] == ["execution_start", "execution_cached"]
    assert sequence[-2:] == ["execution_success", "executing"]
    assert {"executing", "progress", "progress_state", "executed"} <= set(sequence)
    executed = [m["data"] for m in events if m["type"] == "executed"]
    assert executed == [{"node": "3", "display_node": "3", "output": {"text": ["7"]},
                         "prompt_id": first}]

    second = server.queue_prompt(prompt, socket.sid)
    again = socket.until_done(second)
    cached = next(m["data"] for m in again if m["type"] == "execution_cached")
    assert sorted(cached["nodes"]) == ["1", "2", "3"]
    assert "progress" not in names(again)
    # a cache hit still delivers the output node's result
    assert [m["data"]["output"] for m in again if m["type"] == "executed"] == [{"text": ["7"]}]
    report = server.wait_history(second)["lg"]["run_report"]
    assert {node: r["state"] for node, r in report.items()} == {"1": "cached", "2": "cached",
                                                                "3": "cached"}
    first_report = server.wait_history(first)["lg"]["run_report"]
    assert all(r["state"] == "ran" and r["reason"] for r in first_report.values())
    socket.close()


def test_history_entry_shape_and_paging(server: ServerThread) -> None:
    ids = [server.queue_prompt(chain_prompt(100 + i)) for i in range(3)]
    for prompt_id in ids:
        entry = server.wait_history(prompt_id)
        assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
        assert entry["prompt"][1] == prompt_id and entry["prompt"][4] == ["3"]
    everything = server.get("/history").json()
    assert list(everything)[-3:] == ids
    assert list(server.get("/history?max_items=2").json()) == ids[1:]
    assert list(server.get("/history?max_items=1&offset=0").json()) == [list(everything)[0]]
    server.post("/history", {"delete": [ids[0]]})
    assert server.get(f"/history/{ids[0]}").json() == {}


def test_events_go_only_to_the_client_that_queued(server: ServerThread) -> None:
    mine, other = server.websocket(), server.websocket()
    prompt_id = server.queue_prompt(chain_prompt(3, seconds=0.05), mine.sid)
    mine.until_done(prompt_id)
    # the other client saw status broadcasts only
    other.ws.settimeout(0.3)
    try:
        while True:
            other.next_text()
    except Exception:
        pass
    assert {m["type"] for m in other.texts} <= {"status"}
    mine.close(), other.close()


def test_a_prompt_queued_without_client_id_sends_no_events(server: ServerThread) -> None:
    watcher = server.websocket()
    prompt_id = server.queue_prompt(chain_prompt(3, seconds=0.05))
    server.wait_history(prompt_id)
    watcher.ws.settimeout(0.3)
    try:
        while True:
            watcher.next_text()
    except Exception:
        pass
    assert {m["type"] for m in watcher.texts} <= {"status"}
    watcher.close()


def test_preview_frames_in_both_layouts(server: ServerThread) -> None:
    legacy = server.websocket()
    modern = server.websocket(feature_flags={"supports_preview_metadata": True})
    for socket, value in ((legacy, 1), (modern, 2)):
        prompt = {"1": {"class_type": "TestSaveSquare",
                        "inputs": {"value": value, "filename_prefix": "preview"}}}
        prompt_id = server.queue_prompt(prompt, socket.sid)
        socket.until_done(prompt_id)
        assert socket.binaries, "no preview frame arrived"
        frame = socket.binaries[-1]
        if socket is legacy:
            assert struct.unpack(">II", frame[:8]) == (1, 1)
            assert frame[8:10] == b"\xff\xd8"
        else:
            event, length = struct.unpack(">II", frame[:8])
            meta = json.loads(frame[8:8 + length])
            assert event == 4 and meta["prompt_id"] == prompt_id and meta["node_id"] == "1"
            assert meta["image_type"] == "image/jpeg"
            assert frame[8 + length:8 + length + 2] == b"\xff\xd8"
    assert any(m["type"] == "feature_flags" for m in modern.texts)
    legacy.close(), modern.close()


def test_saved_image_is_fetched_through_view(server: ServerThread) -> None:
    prompt = {"1": {"class_type": "TestSaveSquare",
                    "inputs": {"value": 77, "filename_prefix": "viewme"}}}
    entry = server.wait_history(server.queue_prompt(prompt))
    image = entry["outputs"]["1"]["images"][0]
    response = server.get(f"/view?filename={image['filename']}&type=output&subfolder=")
    assert response.status == 200 and response.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    webp = server.get(f"/view?filename={image['filename']}&preview=webp;90")
    assert webp.headers["content-type"] == "image/webp" and webp.body[8:12] == b"WEBP"
    jpeg = server.get(f"/view?filename={image['filename']}&preview=jpeg;80&channel=rgb")
    assert jpeg.body[:2] == b"\xff\xd8"
    alpha = server.get(f"/view?filename={image['filename']}%20%5Boutput%5D&channel=a")
    assert alpha.headers["content-type"] == "image/png"


def test_interrupt_by_id_stops_only_that_prompt(server: ServerThread) -> None:
    socket = server.websocket()
    slow = server.queue_prompt(chain_prompt(11, seconds=30), socket.sid)
    after = server.queue_prompt(chain_prompt(12, seconds=0.05), socket.sid)
    _wait_running(server, slow)
    # naming a prompt that is not running does nothing
    assert server.post("/interrupt", {"prompt_id": after}).json() == {"interrupted": None}
    assert server.post("/interrupt", {"prompt_id": slow}).json() == {"interrupted": slow}
    events = socket.until_done(slow, timeout=20)
    assert "execution_interrupted" in names(events)
    assert server.wait_history(slow)["lg"]["state"] == "interrupted"
    socket.until_done(after)
    assert server.wait_history(after)["status"]["status_str"] == "success"
    socket.close()


def test_cancel_and_reprioritise_jobs_by_id(server: ServerThread) -> None:
    blocker = server.queue_prompt(chain_prompt(21, seconds=30))
    _wait_running(server, blocker)
    a = server.queue_prompt(chain_prompt(22))
    b = server.queue_prompt(chain_prompt(23))
    c = server.queue_prompt(chain_prompt(24))
    pending = [item[1] for item in server.get("/queue").json()["queue_pending"]]
    assert pending == [a, b, c]
    moved = server.post(f"/api/lg/jobs/{c}/priority", {"front": True}).json()
    assert moved["position"] == 0
    assert [i[1] for i in server.get("/queue").json()["queue_pending"]] == [c, a, b]
    late = server.post(f"/api/lg/jobs/{a}/priority", {"priority": 10**6}).json()
    assert late["position"] == 2 and late["number"] == 10**6
    assert [i[1] for i in server.get("/queue").json()["queue_pending"]] == [c, b, a]
    assert server.post(f"/api/lg/jobs/{a}/cancel").json()["result"] == "cancelled"
    assert server.get(f"/api/lg/jobs/{a}").json()["state"] == "cancelled"
    assert server.post(f"/api/lg/jobs/{a}/priority", {"number": 1}).status == 409
    assert server.post("/api/lg/jobs/nope/cancel").status == 404
    assert server.post(f"/api/lg/jobs/{blocker}/cancel").json()["result"] == "interrupting"
    assert server.wait_history(blocker)["lg"]["state"] == "cancelled"
    order = [server.wait_history(pid)["lg"]["finished_at"] for pid in (c, b)]
    assert server.get(f"/api/lg/jobs/{c}").json()["state"] == "success"
    assert order == sorted(order)


def test_queue_delete_and_clear(server: ServerThread) -> None:
    blocker = server.queue_prompt(chain_prompt(31, seconds=30))
    _wait_running(server, blocker)
    ids = [server.queue_prompt(chain_prompt(32 + i)) for i in range(3)]
    server.post("/queue", {"delete": [ids[0]]})
    assert [i[1] for i in server.get("/queue").json()["queue_pending"]] == ids[1:]
    server.post("/queue", {"clear": True})
    queue = server.get("/queue").json()
    assert queue["queue_pending"] == [] and queue["queue_running"][0][1] == blocker
    assert server.get("/prompt").json() == {"exec_info": {"queue_remaining": 1}}
    server.post("/interrupt")
    server.wait_history(blocker)


def test_node_failure_becomes_execution_error_and_server_keeps_serving(
        server: ServerThread) -> None:
    socket = server.websocket()
    for kind, expected in (("value", "this node always fails"), ("memory", "Out of memory")):
        prompt = {"1": {"class_type": "TestFail", "inputs": {"kind": kind}},
                  "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}}
        prompt_id = server.queue_prompt(prompt, socket.sid)
        events = socket.until_done(prompt_id)
        error = next(m["data"] for m in events if m["type"] == "execution_error")
        assert expected in error["exception_message"]
        assert server.wait_history(prompt_id)["status"]["status_str"] == "error"
    # caches survive: an earlier prompt is still a full cache hit
    cached_id = server.queue_prompt(chain_prompt(7, seconds=0.05), socket.sid)
    events = socket.until_done(cached_id)
    assert sorted(next(m["data"]["nodes"] for m in events
                       if m["type"] == "execution_cached")) == ["1", "2", "3"]
    socket.close()


def test_reconnecting_client_learns_the_running_node(server: ServerThread) -> None:
    client_id = uuid.uuid4().hex
    first = server.websocket(client_id)
    prompt_id = server.queue_prompt(chain_prompt(41, seconds=30), client_id)
    while not (message := first.next_text())["type"] == "executing" \
            or message["data"]["node"] != "2":
        pass
    while first.next_text()["type"] != "progress_state":
        pass
    first.close()
    second = server.websocket(client_id)
    executing = second.next_text()
    assert executing["type"] == "executing" and executing["data"]["node"] == "2"
    state = second.next_text()
    assert state["type"] == "progress_state" and state["data"]["prompt_id"] == prompt_id
    assert state["data"]["nodes"]["2"]["state"] == "running"
    server.post("/interrupt", {"prompt_id": prompt_id})
    second.until_done(prompt_id)
    second.close()


def test_free_and_cache_routes(server: ServerThread) -> None:
    stats = server.get("/api/lg/cache").json()
    assert stats["entries"] > 0
    assert server.post("/free", {"free_memory": True}).status == 200
    deadline = time.monotonic() + 5
    while server.get("/api/lg/cache").json()["entries"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.get("/api/lg/cache").json()["entries"] == 0
    assert server.post("/free", {"free_memory": "yes"}).status == 400


def test_placeholder_page_when_editor_is_not_built(server: ServerThread) -> None:
    page = server.get("/")
    assert page.status == 200 and b"Latentgraph" in page.body


@pytest.mark.parametrize("path", ["/history/x", "/api/lg/jobs"])
def test_listing_routes_answer_json(server: ServerThread, path: str) -> None:
    assert server.get(path).status == 200


def _wait_running(server: ServerThread, prompt_id: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = server.get("/queue").json()["queue_running"]
        if running and running[0][1] == prompt_id:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{prompt_id} never started")


def test_built_editor_is_served_from_the_web_root(tmp_path) -> None:
    from server.context import ServerConfig
    from tests.server.harness import make_runtime

    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>editor</title>")
    (dist / "assets" / "app.js").write_text("console.log(1)")
    with ServerThread(make_runtime(tmp_path / "base"), ServerConfig(port=0, web_root=dist)) as srv:
        index = srv.get("/")
        assert index.status == 200 and b"editor" in index.body
        assert index.headers["content-type"].startswith("text/html")
        assert index.headers["cache-control"] == "no-cache"
        script = srv.get("/assets/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert srv.get("/assets/missing.js").status == 404
        assert srv.get("/api/queue").status == 200  # API routes win over static files


def test_large_bodies_are_read_whole(server: ServerThread, base_dir) -> None:
    workflow = {"nodes": [{"id": i, "type": "Note", "widgets_values": ["x" * 200]}
                          for i in range(5000)]}
    raw = json.dumps(workflow).encode()
    assert len(raw) > 1_000_000
    assert server.post("/userdata/workflows%2Fbig.json", raw=raw).status == 200
    assert (base_dir / "user/default/workflows/big.json").read_bytes() == raw
    body = {"prompt": {"1": {"class_type": "TestNumber", "inputs": {"value": 5}},
                       "2": {"class_type": "TestShow", "inputs": {"value": ["1", 0]}}},
            "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
    response = server.post("/prompt", body)
    assert response.status == 200, response.body[:200]
    server.wait_history(response.json()["prompt_id"])


def test_event_loop_stays_responsive_while_a_prompt_runs(server: ServerThread) -> None:
    prompt_id = server.queue_prompt(chain_prompt(51, seconds=30))
    _wait_running(server, prompt_id)
    slowest = 0.0
    for _ in range(20):
        started = time.perf_counter()
        assert server.get("/queue").status == 200
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 1.0
    server.post("/interrupt", {"prompt_id": prompt_id})
    server.wait_history(prompt_id)


def test_view_metadata_reads_safetensors_header_only(server: ServerThread, base_dir) -> None:
    import torch
    from safetensors.torch import save_file

    target = base_dir / "models" / "loras" / "style.safetensors"
    save_file({"w": torch.zeros(2)}, str(target), metadata={"ss_network_dim": "4"})
    found = server.get("/view_metadata/loras?filename=style.safetensors")
    assert found.status == 200 and found.json() == {"ss_network_dim": "4"}
    for query in ("loras?filename=missing.safetensors", "loras?filename=../../x.safetensors",
                  "nofolder?filename=style.safetensors", "loras?filename=style.ckpt"):
        assert server.get(f"/view_metadata/{query}").status == 404, query


def test_view_metadata_on_a_deeply_nested_header_is_a_client_error(server: ServerThread, base_dir) -> None:
    import struct

    header = ("[" * 50_000 + "]" * 50_000).encode()
    target = base_dir / "models" / "loras" / "deep.safetensors"
    target.write_bytes(struct.pack("<Q", len(header)) + header)
    response = server.get("/view_metadata/loras?filename=deep.safetensors")
    assert 400 <= response.status < 500


def test_two_tabs_sharing_a_client_id_both_follow_its_prompts(server: ServerThread) -> None:
    client_id = uuid.uuid4().hex
    first, second = server.websocket(client_id), server.websocket(client_id)
    prompt_id = server.queue_prompt(chain_prompt(61, seconds=0.05), client_id)
    for socket in (first, second):
        assert names(socket.until_done(prompt_id))[-2:] == ["execution_success", "executing"]
    first.close()
    time.sleep(0.1)
    again = server.queue_prompt(chain_prompt(62), client_id)
    assert "execution_success" in names(second.until_done(again))
    second.close()


def test_pause_resume_and_retry(server: ServerThread) -> None:
    socket = server.websocket()
    assert server.post("/api/lg/queue/pause").json() == {"paused": True}
    waiting = server.queue_prompt(chain_prompt(71), socket.sid)
    time.sleep(0.3)
    queue = server.get("/queue").json()
    assert queue["queue_running"] == [] and queue["queue_pending"][0][1] == waiting
    assert server.get("/prompt").json()["paused"] is True
    server.post("/api/lg/queue/resume")
    socket.until_done(waiting)
    assert "paused" not in server.get("/prompt").json()

    retried = server.post(f"/api/lg/jobs/{waiting}/retry", {"client_id": socket.sid}).json()
    assert retried["prompt_id"] != waiting
    events = socket.until_done(retried["prompt_id"])
    assert [m["data"]["output"] for m in events if m["type"] == "executed"] == [{"text": ["71"]}]
    assert server.post("/api/lg/jobs/unknown/retry").status == 404
    socket.close()


def test_non_finite_numbers_never_break_json_or_the_worker(server: ServerThread) -> None:
    socket = server.websocket()
    strict = {"parse_constant": lambda c: pytest.fail(f"bare {c} in JSON")}
    # a non-finite input is refused up front, with the node error (string or JSON number)
    for body in (json.dumps({"prompt": {"1": {"class_type": "TestShowFloat",
                                              "inputs": {"x": "1e999"}}}}).encode(),
                 b'{"prompt": {"1": {"class_type": "TestShowFloat", "inputs": {"x": 1e999}}}}'):
        response = server.post("/prompt", raw=body, headers={"Content-Type": "application/json"})
        assert response.status == 400
        refused = json.loads(response.body.decode(), **strict)
        [error] = refused["node_errors"]["1"]["errors"]
        assert error["type"] == "invalid_input_type" and "finite" in error["details"]
    # a node that computes infinity: events and history stay strict JSON (null instead)
    prompt = {"1": {"class_type": "TestShowFloat", "inputs": {"x": 1e300, "scale": 1e300}}}
    prompt_id = server.queue_prompt(prompt, socket.sid)
    events = socket.until_done(prompt_id)  # every frame parsed as strict JSON
    assert [m["data"]["output"] for m in events if m["type"] == "executed"] == [{"value": [None]}]
    server.wait_history(prompt_id)
    entry = json.loads(server.get(f"/history/{prompt_id}").body.decode(), **strict)[prompt_id]
    assert entry["status"]["status_str"] == "success" and entry["outputs"]["1"] == {"value": [None]}
    # the worker is still alive
    assert server.wait_history(server.queue_prompt(chain_prompt(81)))["status"]["completed"]
    socket.close()
