"""Write a random tiny GLIGEN file for the tiny SD1 checkpoint (released key layout).

    python tools/make_tiny_gligen.py --out models/gligen/tiny-gligen-sd1.safetensors

One gated self-attention "fuser" per transformer block of the tiny SD1 UNet
(``model.diffusion_model.<block>.transformer_blocks.0.fuser.*``) and a ``position_net`` for the
tiny CLIP-L width (32); 8 heads (``latentgraph.arch``). The gates are non-zero so the boxes
matter. The same --seed gives the same file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from diffusion.checkpoint.tiny import TINY_CONTEXT, tiny_unet_config
from diffusion.gligen import GatedSelfAttentionDense, PositionNet
from diffusion.models.attention import BasicTransformerBlock
from diffusion.models.unet import UNetModel
from tools.tiny_files import save_safetensors

PREFIX = "model.diffusion_model."
HEADS = 8
GROUNDING_WIDTH = TINY_CONTEXT["sd1"]  # the grounding tokens live in the text-context width


def tiny_gligen_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        unet = UNetModel(tiny_unet_config("sd1"))
    blocks = [(name, module.norm1.normalized_shape[0]) for name, module in unet.named_modules()
              if isinstance(module, BasicTransformerBlock)]
    state: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, width in blocks:
            fuser = GatedSelfAttentionDense(width, GROUNDING_WIDTH, HEADS, width // HEADS)
            with torch.no_grad():
                fuser.alpha_attn.fill_(0.5)
                fuser.alpha_dense.fill_(0.3)
                for norm in (fuser.norm1, fuser.norm2):
                    norm.weight.add_(0.1 * torch.randn_like(norm.weight))
                    norm.bias.add_(0.1 * torch.randn_like(norm.bias))
            state.update({f"{PREFIX}{name}.fuser.{k}": v.contiguous() for k, v in fuser.state_dict().items()})
        position_net = PositionNet(TINY_CONTEXT["sd1"], GROUNDING_WIDTH)
        with torch.no_grad():
            position_net.null_positive_feature.normal_()
            position_net.null_position_feature.normal_()
        state.update({f"{PREFIX}position_net.{k}": v.contiguous() for k, v in position_net.state_dict().items()})
    return state


def write_tiny_gligen(path: str | Path, seed: int = 0) -> Path:
    metadata = {"latentgraph.arch": json.dumps({"gligen": {"heads": HEADS}})}
    return save_safetensors(tiny_gligen_state_dict(seed), path, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_tiny_gligen(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
