"""Benchmark: the per-step cost a ControlNet adds to an SD1.5 CFG step on the CPU, ours vs diffusers.

Full-size SD1.5 UNet and ControlNet (cldm_v15 shapes), random weights (no download), fp32, one
CFG step = a batch of 2 (cond + uncond), 77 tokens. Ours runs the CONTROL_NET value's own path
(``get_control``: hint fitting, network through the model manager, strength merge) and our UNet
with the residuals; diffusers runs ``ControlNetModel`` then ``UNet2DConditionModel`` with
``down_block_additional_residuals``. Both share the very same weight tensors (diffusers' models
adopt ours through diffusers' own converters) and are timed interleaved in one process, so
machine noise hits both alike; the minimum over repeats is reported. The added cost is the
controlled step minus the plain UNet step of the same library. The residuals and outputs are
also compared (full-size parity).

    .venv/bin/python bench/control.py                  # 256², 2 repeats, 1 thread
    .venv/bin/python bench/control.py --size 512 --repeats 3 --threads 2

Goal (issue 12): ours/diffusers added cost ≤ 1.0×. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.unet import build_models, random_weights
from diffusion.checkpoint.arch import full_size_unet_config
from diffusion.controlnet.control import ControlNet
from diffusion.controlnet.network import ControlNetConfig, ControlNetModel
from diffusion.controlnet.tiny import diffusers_controlnet_config, to_diffusers_layout
from diffusion.memory import ModelManager


def build_controlnets() -> tuple[ControlNet, torch.nn.Module]:
    """Our SD1.5 ControlNet value and diffusers' ControlNetModel holding the same tensors."""
    from diffusers import ControlNetModel as DiffusersControlNet

    config = ControlNetConfig(unet=full_size_unet_config("sd1"))
    with torch.device("meta"):
        network = ControlNetModel(config)
    network = random_weights(network, seed=5)
    # random_weights gives the zero convs unit-scale weights: the residuals are not trivially zero.
    converted = to_diffusers_layout(network.state_dict(), config)
    with torch.device("meta"):
        reference = DiffusersControlNet(**diffusers_controlnet_config(config))
    reference.load_state_dict(converted, strict=True, assign=True)
    manager = ModelManager("cpu")
    manager.register(network, "ControlNet (bench)")
    return ControlNet(network, manager, "sd1"), reference.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SD1.5 ControlNet step cost on the CPU: ours vs diffusers.")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    unet, unet_ref = build_models()
    control, control_ref = build_controlnets()
    generator = torch.Generator().manual_seed(args.size)
    x = torch.randn(2, 4, args.size // 8, args.size // 8, generator=generator)
    t = torch.tensor([500.0, 500.0])
    context = torch.randn(2, 77, 768, generator=generator)
    hint = torch.rand(1, 3, args.size, args.size, generator=generator)
    applied = control.copy().set_cond_hint(hint, 1.0)

    def ours_controlled() -> torch.Tensor:
        return unet(x, t, context, control=applied.get_control(x, t, context, batched_number=2))

    def diffusers_controlled() -> torch.Tensor:
        down, mid = control_ref(x, t, encoder_hidden_states=context, controlnet_cond=hint.expand(2, -1, -1, -1),
                                return_dict=False)
        return unet_ref(x, t, encoder_hidden_states=context, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample

    cases = {
        "ours_plain": lambda: unet(x, t, context),
        "ours_controlled": ours_controlled,
        "diffusers_plain": lambda: unet_ref(x, t, encoder_hidden_states=context).sample,
        "diffusers_controlled": diffusers_controlled,
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    with torch.no_grad():
        outputs = {name: fn() for name, fn in cases.items()}  # warm-up (oneDNN kernels) and parity
        for _ in range(args.repeats):
            for name, fn in cases.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                gc.collect()
    best = {name: min(values) for name, values in times.items()}
    added_ours = best["ours_controlled"] - best["ours_plain"]
    added_diffusers = best["diffusers_controlled"] - best["diffusers_plain"]
    result = {
        "size": args.size,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        **{f"{name}_s": round(value, 3) for name, value in best.items()},
        "added_ours_s": round(added_ours, 3),
        "added_diffusers_s": round(added_diffusers, 3),
        "added_ours_vs_diffusers": round(added_ours / added_diffusers, 3),
        "controlled_step_ours_vs_diffusers": round(best["ours_controlled"] / best["diffusers_controlled"], 3),
        "controlled_max_abs_diff": (outputs["ours_controlled"] - outputs["diffusers_controlled"]).abs().max().item(),
        "control_effect_max_abs": (outputs["diffusers_controlled"] - outputs["diffusers_plain"]).abs().max().item(),
        "all_times_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
