"""Put a small demo checkpoint in models/checkpoints when there is none, so the default
workflow runs out of the box (`make run` calls this before starting the server).

The demo checkpoint has random weights: it exercises the whole pipeline but draws noise, and
its name says so. Users replace it with a real SD1.x/SD2.x/SDXL checkpoint.

    python tools/place_demo_checkpoint.py [--base-directory DIR] [--force]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEMO_NAME = "latentgraph-demo-random-noise.safetensors"
CHECKPOINT_SUFFIXES = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"})
REPO_ROOT = Path(__file__).resolve().parents[1]


def existing_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files anywhere under `directory` (hidden files and folders ignored)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory).parts
        if any(part.startswith(".") for part in relative):
            continue
        if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
            found.append(path)
    return sorted(found)


def place_demo_checkpoint(base_directory: Path, force: bool = False) -> Path | None:
    """Write the demo checkpoint if models/checkpoints has none; return its path, or None."""
    directory = base_directory / "models" / "checkpoints"
    if existing_checkpoints(directory) and not force:
        return None
    from tools.make_tiny_checkpoint import make_tiny_checkpoint

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / DEMO_NAME
    partial = directory / f".{DEMO_NAME}.partial"  # hidden, so never listed half-written
    make_tiny_checkpoint("sd1", partial.with_suffix(".safetensors"), seed=0)
    os.chmod(partial.with_suffix(".safetensors"), 0o644)
    os.replace(partial.with_suffix(".safetensors"), target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-directory", type=Path, default=REPO_ROOT,
                        help="folder holding models/ (default: the repository)")
    parser.add_argument("--force", action="store_true", help="write it even if checkpoints exist")
    args = parser.parse_args(argv)
    base = args.base_directory.expanduser().resolve()
    placed = place_demo_checkpoint(base, force=args.force)
    if placed is None:
        count = len(existing_checkpoints(base / "models" / "checkpoints"))
        print(f"models/checkpoints has {count} checkpoint(s); no demo checkpoint needed.")
    else:
        print(f"Placed a demo checkpoint: {placed}\n"
              "  It has RANDOM weights, so it makes noise, not pictures. Put a real SD1.x, SD2.x "
              "or SDXL .safetensors checkpoint in models/checkpoints/ for real images.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
