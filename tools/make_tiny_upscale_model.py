"""Write a random tiny upscale model in Real-ESRGAN's released layout (BasicSR ``RRDBNet`` keys).

    python tools/make_tiny_upscale_model.py --out models/upscale_models/tiny-esrgan-x4.pth

``.pth`` files are wrapped in ``{"params_ema": ...}`` like RealESRGAN_x4plus.pth; ``.safetensors``
files hold the bare keys. Widths are tiny (features 8, one RRDB; the growth width stays 32, which spandrel assumes as every
release does); the same --seed gives
the same file.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from tools.tiny_files import save_safetensors


def tiny_esrgan_state_dict(
    scale: int = 4, features: int = 8, growth: int = 32, blocks: int = 1, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Real-ESRGAN (BasicSR RRDBNet) key layout: conv_first, body.N.rdbK.convM, conv_body,
    conv_up1.., conv_hr, conv_last; 3×3 convolutions with small random weights."""
    if scale not in (1, 2, 4, 8):
        raise ValueError("scale must be 1, 2, 4 or 8")
    generator = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, int]] = {"conv_first": (features, 3)}
    for block in range(blocks):
        for rdb in (1, 2, 3):
            for conv in range(1, 6):
                out = features if conv == 5 else growth
                shapes[f"body.{block}.rdb{rdb}.conv{conv}"] = (out, features + (conv - 1) * growth)
    shapes["conv_body"] = (features, features)
    for up in range(1, int(math.log2(scale)) + 1):
        shapes[f"conv_up{up}"] = (features, features)
    shapes["conv_hr"] = (features, features)
    shapes["conv_last"] = (3, features)
    state: dict[str, torch.Tensor] = {}
    for name, (out, inp) in shapes.items():
        bound = 1.0 / math.sqrt(inp * 9)
        state[f"{name}.weight"] = (torch.rand(out, inp, 3, 3, generator=generator) * 2 - 1) * bound
        state[f"{name}.bias"] = (torch.rand(out, generator=generator) * 2 - 1) * bound
    return state


def write_tiny_esrgan(path: str | Path, scale: int = 4, seed: int = 0) -> Path:
    path = Path(path)
    state = tiny_esrgan_state_dict(scale=scale, seed=seed)
    if path.suffix == ".safetensors":
        return save_safetensors(state, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"params_ema": state}, tmp)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output .pth or .safetensors file")
    parser.add_argument("--scale", type=int, default=4, choices=(1, 2, 4, 8))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.suffix not in (".safetensors", ".pth"):
        parser.error("--out must end in .pth or .safetensors")
    path = write_tiny_esrgan(args.out, args.scale, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
