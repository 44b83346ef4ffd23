"""Write a random tiny CLIP vision tower (width 32, 3 layers, 28-px input) in a distributed layout.

    python tools/make_tiny_clip_vision.py --layout hf --out models/clip_vision/tiny-clip-vision.safetensors

Layouts: ``hf`` (``vision_model.*`` + ``visual_projection.weight``, like clip_vision_h.safetensors)
or ``open_clip`` (``visual.*`` with fused q/k/v). Head count and activation are stored in the
``latentgraph.arch`` metadata, which tiny widths need. The same --seed gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from diffusion.clip_vision.tiny import TINY, hf_to_open_clip, tiny_hf_state_dict
from tools.tiny_files import save_safetensors


def tiny_arch_metadata(hidden_act: str = "gelu") -> dict[str, str]:
    arch = {"clip_vision": {"heads": TINY["num_attention_heads"], "hidden_act": hidden_act}}
    return {"latentgraph.arch": json.dumps(arch)}


def write_tiny_clip_vision(path: str | Path, layout: str = "hf", seed: int = 0, hidden_act: str = "gelu",
                           **changes: int) -> Path:
    state = tiny_hf_state_dict(seed, hidden_act, **changes)
    if layout == "open_clip":
        state = hf_to_open_clip(state)
    return save_safetensors(state, path, tiny_arch_metadata(hidden_act))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--layout", choices=("hf", "open_clip"), default="hf")
    parser.add_argument("--projection", type=int, default=TINY["projection_dim"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_tiny_clip_vision(args.out, args.layout, args.seed, projection_dim=args.projection)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
