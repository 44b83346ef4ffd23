"""Load every pack in a custom_nodes folder through our loader and print per-pack results.

Usage: python tools/measure_packs.py BASE_DIRECTORY   (BASE_DIRECTORY/custom_nodes holds the packs)
Prints one line per pack, then one JSON object (packs loaded, nodes loaded) on the last line.
Total nodes per pack are counted statically (keys of NODE_CLASS_MAPPINGS are not knowable
without importing), so "nodes" is what registered.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.bootstrap import create_runtime  # noqa: E402
from app.settings import Settings  # noqa: E402


def main(base: str) -> None:
    logging.basicConfig(level=logging.ERROR)
    runtime = create_runtime(Settings(base_directory=Path(base), cache_ram_gb=0.5))
    problems: dict[str, list[str]] = {}
    for problem in runtime.registry.problems:
        problems.setdefault(problem.source, []).append(problem.message.splitlines()[0][:300])
    loaded = 0
    nodes = 0
    for pack, result in sorted(runtime.custom_packs.items()):
        first = (problems.get(f"custom_nodes/{pack}") or [""])
        print(f"{pack}: ok={result['ok']} nodes={len(result['nodes'])} "
              f"seconds={result['seconds']:.1f} problems={len(problems.get(f'custom_nodes/{pack}', []))} "
              f"first={first[0]}")
        loaded += bool(result["nodes"])
        nodes += len(result["nodes"])
    print(json.dumps({"packs": len(runtime.custom_packs), "packs_with_nodes": loaded, "nodes": nodes}))


if __name__ == "__main__":
    main(sys.argv[1])
