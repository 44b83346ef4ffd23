"""Write a random tiny stable-unCLIP checkpoint (SD2.1-unclip-h layout) for tests and demos.

    python tools/make_tiny_unclip_checkpoint.py --out models/checkpoints/tiny-sd21-unclip.safetensors

The tiny SD2 v-prediction checkpoint of tools/make_tiny_checkpoint.py, with a UNet class embedding
(``label_emb``: image embed ⊕ noise-level embedding), ``noise_augmentor.data_mean/data_std`` and an
OpenCLIP-layout vision tower under ``embedder.model.visual.`` (diffusion.clip_vision.tiny), as the
released SD2.1-unclip-h files hold them. Same --seed, same file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from diffusion.checkpoint.arch import UNET_PREFIX
from diffusion.checkpoint.tiny import tiny_checkpoint_state_dict, tiny_unet_config
from diffusion.clip_vision.tiny import TINY, hf_to_open_clip, tiny_hf_state_dict
from diffusion.models.unet import UNetModel
from tools.tiny_files import save_safetensors

EMBED = TINY["projection_dim"]


def tiny_unclip_state_dict(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    state, metadata = tiny_checkpoint_state_dict("sd2-v", seed)
    config = replace(tiny_unet_config("sd2-v"), adm_in_channels=2 * EMBED)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        unet = UNetModel(config)
    state = {k: v for k, v in state.items() if not k.startswith(UNET_PREFIX)}
    state.update({UNET_PREFIX + k: v.detach().contiguous() for k, v in unet.state_dict().items()})
    generator = torch.Generator().manual_seed(seed + 11)
    state["noise_augmentor.data_mean"] = 0.1 * torch.randn(1, EMBED, generator=generator)
    state["noise_augmentor.data_std"] = 0.5 + torch.rand(1, EMBED, generator=generator)
    state.update(hf_to_open_clip(tiny_hf_state_dict(seed), prefix="embedder.model.visual."))
    arch = json.loads(metadata["latentgraph.arch"])
    arch.update(variant="sd2-unclip", clip_vision={"heads": TINY["num_attention_heads"], "hidden_act": "gelu"})
    return state, {"latentgraph.arch": json.dumps(arch, sort_keys=True)}


def write_tiny_unclip_checkpoint(path: str | Path, seed: int = 0) -> Path:
    state, metadata = tiny_unclip_state_dict(seed)
    return save_safetensors(state, path, metadata)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_tiny_unclip_checkpoint(args.out, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
