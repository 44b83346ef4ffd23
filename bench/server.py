"""Server latency and throughput on trivial prompts, over real loopback HTTP + websocket.

    .venv/bin/python bench/server.py [--cached 200] [--throughput 300] [--mode both]

Measures, against a real server started in this process (test node pack, no models), with
prompts run in the server process and in a worker process (the default since #19):
- queue→first-event: POST /prompt sent → `execution_start` received on the websocket;
- cached end to end: POST /prompt → closing `executing {node: null}` for a prompt whose every
  node is a cache hit (goal: ≤ 5 ms);
- throughput: many distinct trivial prompts queued at once, prompts per second until all done;
- cached default workflow: ComfyUI's default graph on a tiny random checkpoint, fully cached.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from server.context import ServerConfig  # noqa: E402
from server.workers.recipe import RuntimeRecipe  # noqa: E402
from tests.server.harness import ServerThread, make_runtime  # noqa: E402


def trivial_prompt(value: int) -> dict[str, Any]:
    return {"1": {"class_type": "TestNumber", "inputs": {"value": value}},
            "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0], "b": 1}},
            "3": {"class_type": "TestShow", "inputs": {"value": ["2", 0]}}}


async def _until(ws: aiohttp.ClientWebSocketResponse, prompt_id: str, event: str,
                 end: bool = False) -> float:
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(message.data)
        payload = data.get("data", {})
        if payload.get("prompt_id") != prompt_id or data["type"] != event:
            continue
        if end and payload.get("node") is not None:
            continue
        return time.perf_counter()


async def measure_cached_default_workflow(base: str, runs: int) -> dict[str, float]:
    """End to end time of ComfyUI's default workflow (tiny checkpoint) when fully cached."""
    from tests.server.test_default_workflow import default_workflow

    times = []
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"{base}/ws?clientId=bench-dw") as ws:
        await ws.receive()
        for index in range(runs + 1):
            started = time.perf_counter()
            async with session.post(f"{base}/prompt", json={"prompt": default_workflow(),
                                                           "client_id": "bench-dw"}) as response:
                prompt_id = (await response.json())["prompt_id"]
            done = await _until(ws, prompt_id, "executing", end=True)
            if index:  # the first run computes everything
                times.append((done - started) * 1000)
    return summary(times)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"mean_ms": round(statistics.fmean(values), 3),
            "p50_ms": round(ordered[len(ordered) // 2], 3),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3)}


def default_workflow_figures(runs: int, worker_process: bool) -> dict[str, float]:
    from app.bootstrap import create_runtime
    from app.settings import Settings
    from tests.server.test_default_workflow import CHECKPOINT
    from tools.make_tiny_checkpoint import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as base:
        make_tiny_checkpoint("sd1", Path(base) / "models" / "checkpoints" / CHECKPOINT)
        settings = Settings(base_directory=Path(base), cpu=True, cache_ram_gb=1.0,
                            preview_method="none", disable_all_custom_nodes=True)
        runtime = create_runtime(settings, load_custom_nodes=False)
        recipe = RuntimeRecipe("app.bootstrap:create_runtime", (settings,)) if worker_process else None
        with ServerThread(runtime, ServerConfig(port=0, worker_recipe=recipe)) as server:
            return asyncio.run(measure_cached_default_workflow(server.base, runs))


async def measure(base: str, cached_runs: int, throughput_runs: int) -> dict[str, Any]:
    client_id = "bench"
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"{base}/ws?clientId={client_id}") as ws:
        await ws.receive()  # status

        async def queue(prompt: dict[str, Any]) -> tuple[str, float]:
            started = time.perf_counter()
            async with session.post(f"{base}/prompt", json={"prompt": prompt,
                                                           "client_id": client_id}) as response:
                body = await response.json()
            return body["prompt_id"], started

        # warm up: first run imports and caches
        prompt_id, _ = await queue(trivial_prompt(0))
        await _until(ws, prompt_id, "executing", end=True)

        first_event, cached = [], []
        for _ in range(cached_runs):
            prompt_id, started = await queue(trivial_prompt(0))
            first = await _until(ws, prompt_id, "execution_start")
            done = await _until(ws, prompt_id, "executing", end=True)
            first_event.append((first - started) * 1000)
            cached.append((done - started) * 1000)

        started = time.perf_counter()
        ids = [ (await queue(trivial_prompt(1000 + n)))[0] for n in range(throughput_runs)]
        queued = time.perf_counter()
        remaining = set(ids)
        while remaining:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data["type"] == "executing" and data["data"].get("node") is None:
                remaining.discard(data["data"].get("prompt_id"))
        finished = time.perf_counter()

    return {"queue_to_first_event": summary(first_event),
            "cached_prompt_end_to_end": summary(cached),
            "throughput_prompts_per_s": round(throughput_runs / (finished - started), 1),
            "queueing_prompts_per_s": round(throughput_runs / (queued - started), 1),
            "cached_runs": cached_runs, "throughput_runs": throughput_runs,
            "goal_cached_ms": 5.0}


def mode_figures(args: argparse.Namespace, worker_process: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as base:
        runtime = make_runtime(Path(base))
        recipe = RuntimeRecipe("tests.server.harness:make_runtime", (Path(base),)) \
            if worker_process else None
        with ServerThread(runtime, ServerConfig(port=0, worker_recipe=recipe)) as server:
            figures = asyncio.run(measure(server.base, args.cached, args.throughput))
    if args.default_workflow > 0:
        figures["cached_default_workflow_end_to_end"] = default_workflow_figures(
            args.default_workflow, worker_process)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cached", type=int, default=200, help="sequential cached prompts")
    parser.add_argument("--throughput", type=int, default=300, help="prompts queued at once")
    parser.add_argument("--default-workflow", type=int, default=50,
                        help="cached runs of the default workflow on a tiny checkpoint (0: skip)")
    parser.add_argument("--mode", choices=("both", "in-process", "worker"), default="both",
                        help="where prompts run (default: both, side by side)")
    args = parser.parse_args(argv)
    modes = {"in-process": [False], "worker": [True], "both": [False, True]}[args.mode]
    results: dict[str, Any] = {}
    for worker_process in modes:
        label = "worker_process" if worker_process else "in_process"
        figures = results[label] = mode_figures(args, worker_process)
        for name in ("queue_to_first_event", "cached_prompt_end_to_end",
                     "cached_default_workflow_end_to_end"):
            if name in figures:
                print(f"{label} {name}: {figures[name]}")
        print(f"{label} throughput: {figures['throughput_prompts_per_s']} prompts/s")
    if len(results) == 2:
        inside, worker = results["in_process"], results["worker_process"]
        results["worker_minus_in_process_p50_ms"] = {
            name: round(worker[name]["p50_ms"] - inside[name]["p50_ms"], 3)
            for name in ("queue_to_first_event", "cached_prompt_end_to_end",
                         "cached_default_workflow_end_to_end") if name in inside}
        results["goal_added_ms"] = 2.0
    print(json.dumps({"bench": "server", **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
