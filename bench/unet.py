"""Benchmark: our SD1.5 UNet against diffusers' on the CPU, and checkpoint load time against a raw read.

Full-size SD1.5 architecture with random weights (no download): one CFG step = one UNet call on
a batch of 2 (cond + uncond) with 77 text tokens, at each requested resolution, fp32 and bf16.
Ours and diffusers share the very same weights (diffusers' model is built from our state dict
through diffusers' own LDM converter), run in the same process and are timed interleaved, so
machine noise hits both alike; the minimum over repeats is reported. The fp32 run also checks
that the two outputs agree (full-size parity).

The load part writes a ~2.1 GB fp16 SD1.5-shaped checkpoint (UNet + VAE + CLIP-L), then compares
``load_checkpoint`` (fp32 and bf16 compute, page cache warm) with ``open().read()`` of the file.

    .venv/bin/python bench/unet.py                       # everything (~10 min on 2 cores)
    .venv/bin/python bench/unet.py --sizes 256 --repeats 1 --skip-load

Goals (issue 3): ours ≤ 1.0× diffusers fp32; bf16 ≤ 0.65× fp32; load ≤ 1.2× the raw read.
The last line printed is one JSON object with every figure.

Notes — measured 2026-11-22 on the dev VM (2-vCPU AMD EPYC, torch 2.13 CPU) while five other
jobs kept the load average at 8–9, so the run used ``--threads 1`` (a second intra-op thread makes
every OpenMP barrier wait for a busy core; absolute times are then ~4–5× the idle-machine anchors
of performance-anchors.md §2, but ours and diffusers are interleaved so their ratio holds):

    CFG step (batch 2)   ours      diffusers   ours/diffusers   max |diff|
    fp32 256²            13.83 s   15.85 s     0.87             0.0
    fp32 512²            59.46 s   63.86 s     0.93             0.0
    bf16 256²             3.59 s    4.95 s     0.73             0.0
    bf16 512²            23.18 s   24.61 s     0.94             0.0
    bf16 / fp32 (ours): 0.26 at 256², 0.39 at 512²

    2.13 GB fp16 checkpoint (UNet + VAE + CLIP-L), warm page cache, min of 2:
    raw open().read() 3.23 s; load_checkpoint fp32 2.66 s (0.82×), bf16 2.51 s (0.78×),
    bf16 UNet+VAE only 2.20 s (0.68×).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from diffusion.checkpoint.arch import UNET_PREFIX, VAE_PREFIX, full_size_unet_config
from diffusion.checkpoint.loader import build_meta_unet, build_meta_vae
from diffusion.memory import ModelManager
from diffusion.models.unet import UNetModel


def random_weights(module: torch.nn.Module, seed: int = 0, device: torch.device | str = "cpu",
                   dtype: torch.dtype | None = None) -> torch.nn.Module:
    """Materialise a meta-built module with small deterministic random weights (fast: no kaiming),
    drawn on ``device`` in ``dtype`` (default: the module's)."""
    module = (module if dtype is None else module.to(dtype)).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.ndim == 1:
                param.fill_(1.0)  # norm scales
            else:
                fan_in = param[0].numel()
                param.normal_(0.0, fan_in**-0.5, generator=generator)
    return module.eval().requires_grad_(False)


def build_models() -> tuple[UNetModel, torch.nn.Module]:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = full_size_unet_config("sd1")
    ours = random_weights(build_meta_unet(config))
    diffusers_config = {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    }
    converted = convert_ldm_unet_checkpoint(
        {UNET_PREFIX + k: v for k, v in ours.state_dict().items()}, diffusers_config
    )
    with torch.device("meta"):
        reference = UNet2DConditionModel(**diffusers_config)
    reference.load_state_dict(converted, strict=True, assign=True)
    return ours, reference.eval().requires_grad_(False)


def cfg_inputs(size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(size)
    x = torch.randn(2, 4, size // 8, size // 8, generator=generator).to(dtype)
    t = torch.tensor([500.0, 500.0])
    context = torch.randn(2, 77, 768, generator=generator).to(dtype)
    return x, t, context


def time_steps(ours, reference, size: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """Warm both (oneDNN builds its kernels on first use), then time them interleaved."""
    x, t, context = cfg_inputs(size, dtype)
    run_ours = lambda: ours(x, t, context)
    run_ref = lambda: reference(x, t, encoder_hidden_states=context).sample
    times: dict[str, list[float]] = {"ours": [], "diffusers": []}
    with torch.no_grad():
        out_ours, out_ref = run_ours(), run_ref()
        for _ in range(repeats):
            for name, fn in (("ours", run_ours), ("diffusers", run_ref)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    result = {name: min(values) for name, values in times.items()}
    result["max_abs_diff"] = (out_ours.float() - out_ref.float()).abs().max().item()
    result["output_std"] = out_ref.float().std().item()
    return result


def write_fp16_checkpoint(path: Path, unet: UNetModel) -> int:
    """An SD1.5-shaped single file: our random UNet, a random VAE and CLIP-L, all fp16."""
    from safetensors.torch import save_file

    from diffusion.text.arch import EncoderArch
    from diffusion.text.convert import canonical_key_shapes

    state = {UNET_PREFIX + k: v.half() for k, v in unet.state_dict().items()}
    vae = random_weights(build_meta_vae(), seed=1)
    state.update({VAE_PREFIX + k: v.half() for k, v in vae.state_dict().items()})
    clip_l = EncoderArch("clip_l", width=768, layers=12, heads=12, ffn=3072, hidden_act="quick_gelu")
    generator = torch.Generator().manual_seed(2)
    for name, shape in canonical_key_shapes(clip_l).items():
        state["cond_stage_model.transformer.text_model." + name] = (
            0.02 * torch.randn(shape, generator=generator)
        ).half()
    save_file(state, str(path))
    del state, vae
    gc.collect()
    return path.stat().st_size


def time_load(path: Path, repeats: int) -> dict[str, float]:
    from diffusion.checkpoint import load_checkpoint

    def raw_read() -> None:
        with open(path, "rb") as handle:
            handle.read()

    def load(prefer_bf16: bool, clip: bool):
        def run() -> None:
            loaded = load_checkpoint(path, ModelManager("cpu", prefer_bf16=prefer_bf16), load_clip=clip)
            del loaded
            gc.collect()

        return run

    cases = {
        "raw_read_s": raw_read,
        "load_fp32_s": load(False, True),
        "load_bf16_s": load(True, True),
        "load_bf16_unet_vae_s": load(True, False),
    }
    raw_read()  # warm the page cache
    figures = {name: float("inf") for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            figures[name] = min(figures[name], time.perf_counter() - start)
    for name in ("load_fp32_s", "load_bf16_s", "load_bf16_unet_vae_s"):
        figures[name.replace("_s", "_vs_read")] = figures[name] / figures["raw_read_s"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SD1.5 UNet CPU benchmark: ours vs diffusers; load vs read.")
    parser.add_argument("--sizes", default="256,512", help="image sizes in pixels, comma separated")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--skip-unet", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--load-repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="where the 2 GB test checkpoint goes")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    result: dict[str, object] = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    ours, reference = build_models()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.skip_unet:
        for dtype_name in args.dtypes.split(","):
            ours.to(dtypes[dtype_name])
            reference.to(dtypes[dtype_name])
            for size in sizes:
                figures = time_steps(ours, reference, size, dtypes[dtype_name], args.repeats)
                key = f"{dtype_name}_{size}"
                result[f"{key}_ours_s"] = round(figures["ours"], 3)
                result[f"{key}_diffusers_s"] = round(figures["diffusers"], 3)
                result[f"{key}_ours_vs_diffusers"] = round(figures["ours"] / figures["diffusers"], 3)
                result[f"{key}_max_abs_diff"] = figures["max_abs_diff"]
                print(
                    f"{key}: ours {figures['ours']:.2f} s, diffusers {figures['diffusers']:.2f} s, "
                    f"max |diff| {figures['max_abs_diff']:.2e} (output std {figures['output_std']:.2f})",
                    flush=True,
                )
        for size in sizes:
            if f"fp32_{size}_ours_s" in result and f"bf16_{size}_ours_s" in result:
                result[f"bf16_vs_fp32_{size}"] = round(
                    result[f"bf16_{size}_ours_s"] / result[f"fp32_{size}_ours_s"], 3
                )
    ours.float()
    del reference
    gc.collect()

    if not args.skip_load:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            path = Path(tmp) / "sd15-random-fp16.safetensors"
            result["checkpoint_bytes"] = write_fp16_checkpoint(path, ours)
            del ours
            gc.collect()
            figures = time_load(path, args.load_repeats)
            for name, value in figures.items():
                result[name] = round(value, 3)
            print(f"load: {json.dumps({k: round(v, 3) for k, v in figures.items()})}", flush=True)

    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
