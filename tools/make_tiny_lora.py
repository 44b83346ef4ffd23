"""Write a random LoRA / LyCORIS file for a tiny checkpoint, in a real trainer's key layout.

    python tools/make_tiny_lora.py --family sd1 --format kohya --out models/loras/tiny-sd1-kohya.safetensors

Formats: see diffusion.lora.tiny.FORMATS (kohya, locon, dora, peft, loha, loha-tucker, lokr,
lokr-factorised, lokr-tucker, ia3, glora, oft, boft, diff). ``.pt`` output writes a plain tensor
dict with torch.save (readable with weights_only). The same --seed gives the same file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.checkpoint.tiny import VARIANTS
from diffusion.lora.tiny import FORMATS, write_random_lora


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, type=Path, help="output .safetensors or .pt file")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.suffix not in (".safetensors", ".pt"):
        parser.error("--out must end in .safetensors or .pt")
    path = write_random_lora(args.out, args.format, args.family, args.rank, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
