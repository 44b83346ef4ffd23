"""Time per sampling step spent outside the model (sampler math, CFG batching, noise, callbacks).

A stand-in model whose ``apply_model`` is timed separately; everything else in a KSampler run
(20 steps, cfg 8, 512×512 latent, progress callback with rate-limited latent2rgb JPEG previews) counts as
overhead, and ``run_ms`` is the whole run. Goal: ≤ 1 ms per step on CPU. Figures: bench/RESULTS.md.
Prints one JSON object on the last line.

    .venv/bin/python bench/sampler.py [--steps 20] [--size 64] [--repeats 3] [--samplers dpmpp_sde,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from diffusion import sampling  # noqa: E402
from diffusion.sampling import samplers  # noqa: E402
from diffusion.latent_formats import SD15  # noqa: E402
from diffusion.sampling.model_sampling import DEFAULT_LINEAR_END, DEFAULT_LINEAR_START  # noqa: E402
from diffusion.sampling.noise import HalfwayBrownianTree  # noqa: E402
from diffusion.sampling.preview import PreviewStream  # noqa: E402
from nodes.sampling import encode_preview_jpeg  # noqa: E402


class _Config:
    prediction, zero_terminal_snr, timesteps = "eps", False, 1000
    linear_start, linear_end = DEFAULT_LINEAR_START, DEFAULT_LINEAR_END


class TimedModel:
    """ModelHandle stand-in: a cheap elementwise 'network' whose time is excluded."""

    family, inpaint, latent_format, sampling_config = "sd1", False, SD15, _Config()
    load_device, compute_dtype = torch.device("cpu"), torch.float32

    def __init__(self, idle_ms: float = 0.0) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.idle = idle_ms / 1000

    def apply_model(self, x, timestep, context, y=None, concat=None, control=None, **options):
        started = time.perf_counter()
        if self.idle:
            time.sleep(self.idle)  # a GPU step: the CPU waits, free for other work
        out = x * 0.5 + context[:, :1, :1].mean() * 0.01
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return out

    def encode_adm(self, cond_dict, batch, width, height):
        return None


class TimedHandle:
    """Wraps a real ModelHandle (the tiny SD1 checkpoint) and times its UNet calls."""

    def __init__(self, handle) -> None:
        self.handle, self.seconds, self.calls = handle, 0.0, 0
        self.family, self.inpaint, self.latent_format = handle.family, handle.inpaint, handle.latent_format
        self.sampling_config, self.load_device = handle.sampling_config, handle.load_device
        self.compute_dtype = handle.compute_dtype

    def apply_model(self, *args, **kwargs):
        started = time.perf_counter()
        out = self.handle.apply_model(*args, **kwargs)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return out

    def encode_adm(self, *args):
        return self.handle.encode_adm(*args)


def _tiny_sd1():
    import tempfile

    from diffusion.checkpoint.loader import load_checkpoint
    from diffusion.memory import ModelManager
    from tools.make_tiny_checkpoint import make_tiny_checkpoint

    path = make_tiny_checkpoint("sd1", Path(tempfile.mkdtemp()) / "tiny-sd1.safetensors")
    return load_checkpoint(path, ModelManager("cpu"), load_clip=False, load_vae=False).model


def _callback(previews: dict):
    """The KSampler node's preview path: a PreviewStream encoding JPEGs off the step's thread;
    ``seconds`` is the time the step's own thread spends on previews."""
    stream = PreviewStream(SD15, encode_preview_jpeg, "cpu")

    def on_step(step, total, x0):
        nonlocal stream
        started = time.perf_counter()
        if stream is not None:
            stream.offer(step, total, x0)
            if step >= total - 1:
                stream.close()
                previews["count"], stream = stream.started, None
        previews["seconds"] += time.perf_counter() - started

    return on_step


@contextmanager
def _brownian_trees():
    """Collect the Brownian trees made inside the block (their ``draws`` is what SDE noise cost)."""
    trees, init = [], HalfwayBrownianTree.__init__

    def recording(tree, *args, **kwargs):
        init(tree, *args, **kwargs)
        trees.append(tree)

    HalfwayBrownianTree.__init__ = recording
    try:
        yield trees
    finally:
        HalfwayBrownianTree.__init__ = init


@contextmanager
def _prefetching_as_on_an_accelerator():
    """Let the SDE samplers prefetch noise as they do for a model on a GPU (the latent here stays on the CPU)."""
    decide = samplers._prefetch_pays
    samplers._prefetch_pays = lambda x: True
    try:
        yield
    finally:
        samplers._prefetch_pays = decide


def bench_sampler(name: str, steps: int, size: int, repeats: int, idle_ms: float = 0.0, tiny=None) -> dict:
    width = 32 if tiny is not None else 768
    positive = [[torch.randn(1, 77, width), {}]]
    negative = [[torch.randn(1, 77, width), {}]]
    best = None
    for _ in range(repeats):
        model = TimedHandle(tiny) if tiny is not None else TimedModel(idle_ms)
        previews = {"count": 0, "seconds": 0.0}
        latent = {"samples": torch.zeros(1, 4, size, size)}
        with _brownian_trees() as trees:
            started = time.perf_counter()
            sampling.common_ksampler(model, 1, steps, 8.0, name, "karras", positive, negative, latent,
                                     callback=_callback(previews))
            total = time.perf_counter() - started
        overhead_ms = (total - model.seconds) / steps * 1000
        if best is None or overhead_ms < best["overhead_ms_per_step"]:
            best = {"overhead_ms_per_step": round(overhead_ms, 3), "run_ms": round(total * 1000, 1),
                    "model_calls": model.calls,
                    "model_ms_per_step": round(model.seconds / steps * 1000, 3),
                    "previews": previews["count"],
                    "preview_ms_each": round(previews["seconds"] / max(previews["count"], 1) * 1000, 3)}
            if trees:
                best["brownian_draws"] = sum(tree.draws for tree in trees)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="latent side (64 = 512x512 image)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samplers", default="", help="comma-separated names (default: all)")
    parser.add_argument("--gpu-like-ms", type=float, default=15.0,
                        help="also time the SDE samplers with a model step that leaves the CPU idle this long")
    parser.add_argument("--tiny-sd1", action="store_true",
                        help="use a real tiny random-weight SD1 UNet instead of the elementwise stand-in")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sampling.common_ksampler(TimedModel(), 1, 2, 8.0, "euler", "normal", [[torch.zeros(1, 77, 768), {}]],
                             [[torch.zeros(1, 77, 768), {}]], {"samples": torch.zeros(1, 4, 8, 8)})  # warm-up
    tiny = _tiny_sd1() if args.tiny_sd1 else None
    results = {}
    names = [n for n in args.samplers.split(",") if n] or list(sampling.SAMPLER_NAMES)
    for name in names:
        results[name] = bench_sampler(name, args.steps, args.size, args.repeats, tiny=tiny)
        draws = results[name].get("brownian_draws")
        print(f"{name:20s} {results[name]['overhead_ms_per_step']:7.3f} ms/step outside the model "
              f"({results[name]['model_calls']} model calls"
              + (f", {draws} Brownian draws)" if draws else ")"), flush=True)
    worst = max(r["overhead_ms_per_step"] for r in results.values())
    # SDE samplers pay for Brownian-tree queries (as in ComfyUI/k-diffusion); they are prefetched
    # on a thread, which hides them behind a model step that does not need the CPU (a GPU step).
    overlapped = {}
    with _prefetching_as_on_an_accelerator():
        for name in [n for n in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde") if n in names]:
            overlapped[name] = bench_sampler(name, args.steps, args.size, args.repeats, args.gpu_like_ms)
            print(f"{name:20s} {overlapped[name]['overhead_ms_per_step']:7.3f} ms/step outside a "
                  f"{args.gpu_like_ms:g} ms GPU-like model step, run {overlapped[name]['run_ms']} ms",
                  flush=True)
    print(json.dumps({"benchmark": "sampler_overhead", "device": "cpu", "steps": args.steps,
                      "model": "tiny-sd1 UNet" if tiny is not None else "elementwise stand-in",
                      "latent": [1, 4, args.size, args.size], "cfg": 8.0, "goal_ms_per_step": 1.0,
                      "worst_ms_per_step": worst, "samplers": results,
                      "sde_with_gpu_like_model": {"model_ms": args.gpu_like_ms, "samplers": overlapped}}))


if __name__ == "__main__":
    main()
