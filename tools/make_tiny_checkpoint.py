"""Write a tiny random-weight SD checkpoint in the exact single-file key layout.

    python tools/make_tiny_checkpoint.py --family sd1 --out models/checkpoints/tiny-sd1.safetensors

Families: sd1, sd1-inpaint, sd2, sd2-v, sdxl, sdxl-refiner. The same --seed gives the same file.
Importable: ``make_tiny_checkpoint(family, out, seed)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from diffusion.checkpoint.tiny import VARIANTS, write_tiny_checkpoint

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def make_tiny_checkpoint(family: str, out: str | Path, seed: int = 0, dtype: str = "fp32") -> Path:
    """Write the checkpoint for ``family`` to ``out``; returns the path."""
    return write_tiny_checkpoint(out, family, seed, dtype=_DTYPES[dtype])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="fp32")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error("--out must end in .safetensors")
    path = make_tiny_checkpoint(args.family, args.out, args.seed, args.dtype)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
