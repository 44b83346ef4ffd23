"""Engine overhead benchmark: validate + schedule + cache lookup + call, per node.

Graphs of trivial nodes (so the figure is pure engine cost):
- chain: Const -> Inc -> Inc -> ... -> Sink (n nodes);
- wide: Const feeding (n-1)/2 independent Inc -> Sink pairs (many outputs).
"cold" runs on an empty cache, "cached" re-runs the same prompt on a warm one.
Goals: <= 10 us per node, growing linearly; a fully cached re-run of a 10-node graph <= 5 ms.
Per-node figures are CPU time of the executing thread (best of --repeat runs, taken in three
spells spread over the benchmark), so a machine shared with other work still measures the
engine; wall-clock figures are printed beside them.
Prints one human-readable line per case and, last, one JSON object.

Measured (2-core x86_64 AMD EPYC VM, 1 MB L2 per core; Python 3.11.7). The VM's speed swings
up to ~1.7x for minutes at a time: the machine reference line reads 9.4-9.8 us in its normal
spells and 15-17 us in its slow ones, when every figure below is ~1.6x higher. Quote figures
only with that line beside them. Cold us/node:
    chain 100 / 1000 / 5000: 9.3 / 9.7 / 13.6 (first engine) -> 7.8 / 9.0 / 12.2 (single-value
    call fast path) -> 7.8 / 8.0 / 11.1 (validation fast path + one record per node)
    -> 6.1-6.2 / 6.0 / 8.0-8.2 (this version, reference 9.6-9.8 us)
    wide  100 / 1000 / 5000: 10.3 / 11.2 / 16.7 -> 8.7 / 10.1 / 16.3 -> 8.7 / 9.2 / 12.2
    -> 7.0-7.2 / 6.9 / 9.3-9.4 (this version)
Fully cached: 3.0-5.2 us/node; a fully cached re-run of a 10-node graph takes 0.055 ms.
What this version changed:
- cache keys are small ints from an exact key table (marshal bytes -> id) instead of a per-node
  blake2b digest, and a node's fingerprint is those bytes (nothing for the GC to scan);
- a prompt's own bookkeeping is kept out of the cyclic GC's count while it runs: it was scanned
  by every young collection, and by the full ones it triggered (1-3 us/node at 5000 nodes, and
  superlinear beyond: 17.4 us/node at 20000 nodes at the start of this session);
- no reference cycles: validation's checker kept a bound method on itself, and the key table
  called back into its cache through one, so each prompt left its checker, and each dropped
  cache all its entries, for the collector to find (it did, inside the next timed run);
- fewer objects outlive a prompt (~5 per node, down from ~11): shared report dicts, no
  fingerprint tuples;
- (a cost, ~2%) the cache counts what several entries hold once: tensor storages, models and the
  networks behind clones.
Per-node cost rises 1.2-1.4x from 100 to 5000 nodes and slowly beyond (chain 7.0 / 7.9 / 9.3,
wide 8.9 / 10.1 / 10.8 at 5000 / 10000 / 20000 nodes in one run). No step is superlinear: one GC
collection per prompt, ~0.2-0.3 us/node. The rise is the memory hierarchy. Each node keeps
~1.2 KB of records, links, results and cache entries, so past ~1000 nodes the working set leaves
the L2 cache, and past ~20000 it competes for the shared L3; every phase pays for that.

Usage: .venv/bin/python bench/engine.py [--repeat N] [--sizes 100,1000,5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.cache import OutputCache  # noqa: E402
from engine.executor import Executor  # noqa: E402
from engine.paths import FolderPaths  # noqa: E402
from engine.registry import NodeRegistry  # noqa: E402
from engine.runtime import Services  # noqa: E402


class BenchConst:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value):
        return (value,)


class BenchInc:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT",), "b": ("INT", {"default": 1, "min": -(2 ** 31), "max": 2 ** 31})}}

    def run(self, a, b):
        return (a + b,)


class BenchSink:
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    def run(self, value):
        return {"ui": {"value": [value]}}


def chain(n: int, seed: int = 0) -> dict:
    prompt = {"0": {"class_type": "BenchConst", "inputs": {"value": seed}}}
    for i in range(1, n - 1):
        prompt[str(i)] = {"class_type": "BenchInc", "inputs": {"a": [str(i - 1), 0], "b": 1}}
    prompt[str(n - 1)] = {"class_type": "BenchSink", "inputs": {"value": [str(n - 2), 0]}}
    return prompt


def wide(n: int, seed: int = 0) -> dict:
    prompt = {"0": {"class_type": "BenchConst", "inputs": {"value": seed}}}
    for i in range(1, (n - 1) // 2 + 1):
        prompt[f"i{i}"] = {"class_type": "BenchInc", "inputs": {"a": ["0", 0], "b": i}}
        prompt[f"s{i}"] = {"class_type": "BenchSink", "inputs": {"value": [f"i{i}", 0]}}
    return prompt


def build_executor(registry: NodeRegistry, services: Services) -> Executor:
    return Executor(registry, OutputCache(budget_bytes=None), services)


def timed(function, *args):
    """(wall seconds, CPU seconds of this thread, result): the CPU figure is what the engine costs
    even when other processes compete for the cores; the wall figure is what a user waits."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = function(*args)
    return time.perf_counter() - wall, time.thread_time() - cpu, result


def attempt(registry: NodeRegistry, services: Services, prompt: dict, label: str) -> tuple[float, ...]:
    """One cold run on a fresh executor, then a fully cached re-run: (cold wall, cold CPU,
    cached wall, cached CPU) in seconds."""
    executor = build_executor(registry, services)
    cold_wall, cold_cpu, outcome = timed(executor.execute, prompt, f"cold-{label}")
    assert outcome.ok, outcome.error
    cached_wall, cached_cpu, outcome = timed(executor.execute, prompt, f"cached-{label}")
    assert outcome.ok and all(r["state"] == "cached" for r in outcome.run_report.values())
    return cold_wall, cold_cpu, cached_wall, cached_cpu


def summarise(prompt: dict, samples: list[tuple[float, ...]]) -> dict:
    n = len(prompt)
    cold_wall, cold_cpu, cached_wall, cached_cpu = (min(column) for column in zip(*samples))
    return {"nodes": n,
            "cold_us_per_node": cold_cpu / n * 1e6, "cached_us_per_node": cached_cpu / n * 1e6,
            "cold_wall_us_per_node": cold_wall / n * 1e6, "cached_wall_us_per_node": cached_wall / n * 1e6,
            "cold_ms": cold_cpu * 1e3, "cached_ms": cached_cpu * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--sizes", default="100,1000,5000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    registry = NodeRegistry()
    for cls in (BenchConst, BenchInc, BenchSink):
        registry.register(cls.__name__, cls, module="bench")
    services = Services(paths=FolderPaths(tempfile.mkdtemp(prefix="lg-bench-")))
    build_executor(registry, services).execute(chain(10), "warm-up")  # imports torch, warms caches

    # Each case's repeats come in three runs of back-to-back attempts spread over the whole
    # benchmark: this VM slows down for tens of seconds at a time, and one such spell should not
    # decide a case's best figure. Back-to-back, so that (as before) a case is measured with its
    # prompt and the engine's code warm in the CPU caches, not after the other cases evicted them.
    prompts = {f"{shape}_{n}": builder(n) for shape, builder in (("chain", chain), ("wide", wide)) for n in sizes}
    samples: dict[str, list[tuple[float, ...]]] = {name: [] for name in prompts}
    references: list[float] = []  # the machine's speed, sampled in every round like the cases
    rounds = 3
    for round_ in range(rounds):
        for name, prompt in prompts.items():
            for index in range(round_, args.repeat, rounds):
                samples[name].append(attempt(registry, services, prompt, f"{name}-{index}"))
        references.append(min(timed(sum, range(1000))[1] for _ in range(700)))
    results = {name: summarise(prompts[name], samples[name]) for name in prompts}
    for name, row in results.items():
        shape = name.split("_")[0]
        print(f"{shape:5} {row['nodes']:5d} nodes: cold {row['cold_us_per_node']:6.2f} us/node CPU "
              f"({row['cold_wall_us_per_node']:6.2f} wall), cached {row['cached_us_per_node']:6.2f} us/node CPU "
              f"({row['cached_wall_us_per_node']:6.2f} wall)")

    ten = chain(10)
    executor = build_executor(registry, services)
    executor.execute(ten, "prime")
    reruns, reruns_wall = [], []
    for index in range(max(args.repeat * 20, 50)):
        wall, cpu, _ = timed(executor.execute, ten, f"rerun-{index}")
        reruns.append(cpu)
        reruns_wall.append(wall)
    rerun_ms = min(reruns) * 1e3
    print(f"fully cached re-run of a 10-node graph: {rerun_ms:.3f} ms CPU (wall: best {min(reruns_wall) * 1e3:.3f} ms, "
          f"median {statistics.median(reruns_wall) * 1e3:.3f} ms)")

    calibration = min(references) * 1e6
    print(f"machine reference: sum(range(1000)) takes {calibration:.1f} us CPU here "
          "(run the same line elsewhere to compare the figures above across machines)")

    worst_cold = max(r["cold_us_per_node"] for r in results.values())
    linear = {shape: results[f"{shape}_{sizes[-1]}"]["cold_us_per_node"] / results[f"{shape}_{sizes[0]}"]["cold_us_per_node"]
              for shape in ("chain", "wide")}
    summary = {
        "benchmark": "engine",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "cases": {k: {m: round(v, 3) for m, v in row.items()} for k, row in results.items()},
        "cached_rerun_10_nodes_ms": round(rerun_ms, 3),
        "cached_rerun_10_nodes_wall_ms": round(min(reruns_wall) * 1e3, 3),
        "timing": "CPU time of the executing thread, best of repeats; *_wall_* are wall clock",
        "worst_cold_us_per_node": round(worst_cold, 3),
        "per_node_growth_largest_vs_smallest": {k: round(v, 3) for k, v in linear.items()},
        "calibration_sum_range_1000_us": round(calibration, 2),
        "goal_us_per_node": 10.0,
        "goal_cached_rerun_ms": 5.0,
        "meets_per_node_goal": worst_cold <= 10.0,
        "meets_rerun_goal": rerun_ms <= 5.0,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
