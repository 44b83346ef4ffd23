"""Write a random tiny T2I-Adapter style model (``t2iadapter_style`` key layout).

    python tools/make_tiny_style_model.py --out models/style_models/tiny-style.safetensors

Width 32 (the tiny CLIP vision width), 4 heads (in ``latentgraph.arch``), 2 layers, 4 style tokens,
context 32 (the tiny SD1 text width). The same --seed gives the same file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from tools.tiny_files import save_safetensors

TINY_STYLE = {"width": 32, "heads": 4, "layers": 2, "tokens": 4, "context": 32}


def tiny_style_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w, ctx = TINY_STYLE["width"], TINY_STYLE["context"]

    def rand(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=g)

    state = {"style_embedding": rand(1, TINY_STYLE["tokens"], w), "proj": rand(w, ctx),
             "ln_pre.weight": 1 + rand(w, scale=0.1), "ln_pre.bias": rand(w, scale=0.1),
             "ln_post.weight": 1 + rand(w, scale=0.1), "ln_post.bias": rand(w, scale=0.1)}
    for i in range(TINY_STYLE["layers"]):
        p = f"transformer_layes.{i}."
        state.update({
            p + "attn.in_proj_weight": rand(3 * w, w), p + "attn.in_proj_bias": rand(3 * w, scale=0.05),
            p + "attn.out_proj.weight": rand(w, w), p + "attn.out_proj.bias": rand(w, scale=0.05),
            p + "ln_1.weight": 1 + rand(w, scale=0.1), p + "ln_1.bias": rand(w, scale=0.1),
            p + "ln_2.weight": 1 + rand(w, scale=0.1), p + "ln_2.bias": rand(w, scale=0.1),
            p + "mlp.c_fc.weight": rand(4 * w, w), p + "mlp.c_fc.bias": rand(4 * w, scale=0.05),
            p + "mlp.c_proj.weight": rand(w, 4 * w), p + "mlp.c_proj.bias": rand(w, scale=0.05),
        })
    return state


def write_tiny_style_model(path: str | Path, seed: int = 0) -> Path:
    metadata = {"latentgraph.arch": json.dumps({"style_model": {"heads": TINY_STYLE["heads"]}})}
    return save_safetensors(tiny_style_state_dict(seed), path, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_tiny_style_model(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
