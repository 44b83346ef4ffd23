"""Benchmark: LoRA patching on the full-size SD1.5 architecture (random weights, CPU, fp32).

A fp16 SD1.5-shaped checkpoint (UNet + VAE + CLIP-L, ~2 GB) is written to a temporary folder and
loaded once with fp32 compute (UNet + CLIP-L). Then, each timed with the checkpoint's file opens
counted (must stay 0 after the first load):

* apply   — a rank-32 kohya LoRA (UNet transformers + text encoder) recorded on clones and merged;
* strength — the same LoRA at another strength, recorded and merged;
* stack   — a second rank-32 LoRA stacked on the first, merged;
* remove  — back to the plain model (originals restored).

"merged" means what the next UNet / text-encoder call does first: ``prepare()`` of the MODEL and
of each CLIP encoder. Sampling: one CFG step (UNet on a batch of 2 at --size²) without LoRA, and
the first step after a strength change (which includes merging the new strength).

    .venv/bin/python bench/lora.py                # ~5 GB of RAM; several minutes on 2 cores
    .venv/bin/python bench/lora.py --size 256

Goals (issue 11): each step ≤ 1.0 s; first step after a strength change ≤ 1.1× a plain step.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.unet import random_weights, write_fp16_checkpoint
from diffusion.checkpoint.arch import full_size_unet_config
from diffusion.checkpoint.loader import build_meta_unet, load_checkpoint
from diffusion.lora.apply import apply_lora
from diffusion.lora.tiny import lora_target, random_lora
from diffusion.memory import ModelManager
from diffusion.text.arch import FULL_SIZE


class OpenCounter:
    """Counts opens of one file through Python's audit hook (open(), Path.open, os.open)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.count = 0
        self.cpu = 0.0  # CPU seconds of the last timed action (all threads; the machine is shared)
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if event == "open" and self.path is not None and args and str(args[0]) == self.path:
            self.count += 1


def merge(model, clip) -> None:
    """What the next network calls do first: merge each handle's patch set into the shared weights."""
    model.prepare()
    for encoder in clip.encoders.values():
        encoder.prepare(clip.patches, clip.patches_uuid)


def timed(counter: OpenCounter, action) -> tuple[object, float, int]:
    """(result, wall seconds, checkpoint opens); the process CPU seconds go to `counter.cpu`."""
    before = counter.count
    start, cpu = time.perf_counter(), time.process_time()
    result = action()
    counter.cpu = time.process_time() - cpu
    return result, time.perf_counter() - start, counter.count - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image size of the sampling step")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    counter = OpenCounter()
    results: dict[str, object] = {"size": args.size, "rank": args.rank, "threads": args.threads}

    with tempfile.TemporaryDirectory(prefix="bench-lora-") as folder:
        path = Path(folder) / "sd15-random.safetensors"
        config = full_size_unet_config("sd1")
        unet = random_weights(build_meta_unet(config))
        write_fp16_checkpoint(path, unet)
        del unet
        gc.collect()
        counter.path = str(path)
        loaded, load_s, load_opens = timed(
            counter, lambda: load_checkpoint(path, ModelManager("cpu"), load_vae=False)
        )
        results["load"] = {"seconds": round(load_s, 2), "checkpoint_opens": load_opens}
        model, clip = loaded.model, loaded.clip

        target = lora_target("sd1", config, FULL_SIZE)
        first = random_lora("kohya", target, rank=args.rank, seed=1)
        second = random_lora("kohya", target, rank=args.rank, seed=2)
        results["lora_tensors"] = len(first)

        generator = torch.Generator().manual_seed(0)
        latent = args.size // 8
        x = torch.randn(2, 4, latent, latent, generator=generator)
        t = torch.tensor([500.0, 500.0])
        context = torch.randn(2, 77, 768, generator=generator)
        model.apply_model(x, t, context)  # warm-up: oneDNN builds its kernels on first use
        _, plain_step, _ = timed(counter, lambda: model.apply_model(x, t, context))

        def apply_and_merge(base_model, base_clip, lora, strength):
            applied = apply_lora(base_model, base_clip, lora, strength, strength, "bench")
            merge(applied.model, applied.clip)
            return applied

        steps: dict[str, dict[str, float | int]] = {}
        one, seconds, opens = timed(counter, lambda: apply_and_merge(model, clip, first, 1.0))
        steps["apply"] = {"seconds": round(seconds, 3), "cpu_seconds": round(counter.cpu, 3), "checkpoint_opens": opens}
        half, seconds, opens = timed(counter, lambda: apply_and_merge(model, clip, first, 0.5))
        steps["strength"] = {"seconds": round(seconds, 3), "cpu_seconds": round(counter.cpu, 3), "checkpoint_opens": opens}
        _, seconds, opens = timed(counter, lambda: apply_and_merge(half.model, half.clip, second, 1.0))
        steps["stack"] = {"seconds": round(seconds, 3), "cpu_seconds": round(counter.cpu, 3), "checkpoint_opens": opens}
        _, seconds, opens = timed(counter, lambda: merge(model, clip))
        steps["remove"] = {"seconds": round(seconds, 3), "cpu_seconds": round(counter.cpu, 3), "checkpoint_opens": opens}
        results["steps"] = steps

        # the first sampling step after a strength change merges the new strength first
        changed = apply_lora(model, clip, first, 0.8, 0.8, "bench")
        _, changed_step, opens = timed(counter, lambda: changed.model.apply_model(x, t, context))
        results["sampling"] = {
            "plain_step_s": round(plain_step, 2),
            "first_step_after_strength_change_s": round(changed_step, 2),
            "ratio": round(changed_step / plain_step, 3),
            "checkpoint_opens": opens,
        }
        results["checkpoint_opens_after_load"] = counter.count - load_opens
        del one
    for name, step in steps.items():
        print(f"{name:9s} {step['seconds']:.3f} s (cpu {step['cpu_seconds']:.3f} s)  checkpoint opens {step['checkpoint_opens']}")
    print(f"plain step {plain_step:.2f} s, first step after a strength change {changed_step:.2f} s "
          f"({changed_step / plain_step:.3f}×)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
