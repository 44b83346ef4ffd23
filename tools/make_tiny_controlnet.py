"""Write a random tiny ControlNet or T2I-Adapter matching a tiny checkpoint, in a real key layout.

    python tools/make_tiny_controlnet.py --family sd1 --layout diffusers --out models/controlnet/tiny-sd1.safetensors

ControlNet layouts: ldm (control_model.*), bare, diffusers (needs diffusers), diff (difference to
the tiny checkpoint of --base-seed), control-lora (low-rank factors against that checkpoint).
T2I-Adapter layouts: t2i, t2i-light, t2i-depth (sd1 only) and t2i-diffusers (needs diffusers).
The same --seed gives the same file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.controlnet.tiny import LAYOUTS, VARIANTS, write_tiny_controlnet


def make_tiny_controlnet(family: str, out: Path, layout: str = "ldm", seed: int = 0, base_seed: int = 0) -> Path:
    return write_tiny_controlnet(out, family, layout, seed, base_seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=VARIANTS)
    parser.add_argument("--layout", default="ldm", choices=LAYOUTS)
    parser.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-seed", type=int, default=0, help="seed of the tiny checkpoint a diff file is against")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error("--out must end in .safetensors")
    path = make_tiny_controlnet(args.family, args.out, args.layout, args.seed, args.base_seed)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
