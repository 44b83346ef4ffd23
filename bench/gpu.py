"""GPU benchmark of the whole KSampler path: SD1.5 512² and SDXL 1024², batch 1, CFG 7, fp16.

Random full-size weights, made directly on the GPU; every side uses the very same weights:

- it/s through the KSampler node (``common_ksampler``: conditioning, CFG, euler, the node's
  progress/preview callback inside a running-node context), previews off and on, eager and
  ``--compile`` (torch.compile + CUDA graphs); each figure is steps / wall time of a whole run;
- the bare UNet: one batch-2 CFG call in a loop (ours eager, ours compiled, diffusers'
  ``UNet2DConditionModel`` eager on the same weights), and how far KSampler runs from it;
- VAE decode (ours ``VAEHandle.decode`` vs diffusers ``AutoencoderKL``, same weights and dtype,
  both ending in a CPU image) and text encoding (ours ``CLIP`` tokenise + encode vs the
  CLIPTokenizer + transformers forward a diffusers pipeline runs), on a written SD1.5 checkpoint;
- cold start: ``main.py run`` of the default workflow in a fresh process until its first step;
- parity: one UNet CFG call in fp16 on the GPU vs fp32 on the CPU (relative L2 error).

    python bench/gpu.py                           # on a CUDA machine (~6 min on an H200)
    python bench/gpu.py --tiny --skip-compile     # CPU smoke test with tiny models

Repeats are interleaved (off/on, ours/diffusers) and the best is kept. ``--deadline`` skips what
is left once that many seconds have passed, so the summary always prints. The last line printed
is one JSON object with every figure (also written to ``--json-out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.unet import random_weights  # noqa: E402
from diffusion.checkpoint.arch import UNET_PREFIX, VAE_PREFIX, full_size_unet_config, full_size_vae_config  # noqa: E402
from diffusion.checkpoint.loader import build_meta_unet, build_meta_vae  # noqa: E402
from diffusion.checkpoint.tiny import tiny_unet_config  # noqa: E402
from diffusion.latent_formats import latent_format_for_family  # noqa: E402
from diffusion.memory import ModelManager  # noqa: E402
from diffusion.patcher import ModelHandle, SamplingConfig  # noqa: E402

T0 = time.perf_counter()
CFG = 7.0
SEED = 42
WORKFLOW = REPO / "workflows" / "default_txt2img.json"


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {message}", flush=True)


# --- models --------------------------------------------------------------------------------------


def random_module(meta: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    return random_weights(meta, seed, device, dtype)


def unet_config(family: str, tiny: bool):
    return tiny_unet_config(family) if tiny else full_size_unet_config(family)


def write_sd15_checkpoint(path: Path, tiny: bool, device: torch.device) -> None:
    """An SD1.5-shaped single file (UNet + VAE + CLIP-L), random weights, fp16 (fp32 tiny)."""
    from safetensors.torch import save_file

    from diffusion.checkpoint.tiny import write_tiny_checkpoint
    from diffusion.text.arch import FULL_SIZE
    from diffusion.text.tiny import random_text_encoder_state_dict

    if tiny:
        write_tiny_checkpoint(path, "sd1", 0)
        return
    state = {}
    unet = random_module(build_meta_unet(unet_config("sd1", False)), device, torch.float16, 0)
    state.update({UNET_PREFIX + k: v.cpu() for k, v in unet.state_dict().items()})
    del unet
    vae = random_module(build_meta_vae(full_size_vae_config()), device, torch.float16, 1)
    state.update({VAE_PREFIX + k: v.cpu() for k, v in vae.state_dict().items()})
    del vae
    state.update(random_text_encoder_state_dict("sd1", 2, FULL_SIZE, torch.float16))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def sdxl_handle(tiny: bool, device: torch.device, dtype: torch.dtype) -> ModelHandle:
    """A full SDXL UNet made on the device (no file: 5 GB written and read back buys nothing here)."""
    unet = random_module(build_meta_unet(unet_config("sdxl", tiny)), device, dtype, 3)
    return ModelHandle(unet, ModelManager(device), "sdxl", latent_format_for_family("sdxl"), SamplingConfig(),
                       name="sdxl-random")


def diffusers_unet(model: ModelHandle, size: int) -> torch.nn.Module:
    """diffusers' UNet holding our network's very tensors (converted by diffusers' own key mapping)."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    from tests.models.diffusers_reference import diffusers_unet_config

    config = diffusers_unet_config(model.unet_config)
    config["sample_size"] = size // 8
    state = {UNET_PREFIX + k: v for k, v in model.diffusion_model.state_dict().items()}
    converted = convert_ldm_unet_checkpoint(state, config)
    with torch.device("meta"):
        reference = UNet2DConditionModel(**config)
    reference.load_state_dict(converted, strict=True, assign=True)
    return reference.eval().requires_grad_(False)


# --- inputs --------------------------------------------------------------------------------------


def conditioning(family: str, context_dim: int, size: int, seed: int) -> list:
    generator = torch.Generator().manual_seed(seed)
    options: dict[str, Any] = {}
    if family == "sdxl":
        pooled = 1280 if context_dim == 2048 else 64
        options = {"pooled_output": torch.randn(1, pooled, generator=generator), "width": size, "height": size}
    return [[torch.randn(1, 77, context_dim, generator=generator), options]]


def unet_inputs(model: ModelHandle, positive: list, negative: list, size: int, device, dtype):
    """What apply_model hands the network for one CFG step: cond and uncond as one batch of 2."""
    generator = torch.Generator().manual_seed(size)
    x = torch.randn(2, 4, size // 8, size // 8, generator=generator).to(device, dtype)
    t = torch.full((2,), 500.0, device=device)
    context = torch.cat([positive[0][0], negative[0][0]]).to(device, dtype)
    y = None
    if model.unet_config.adm_in_channels is not None:
        y = torch.cat([model.encode_adm(c[0][1], 1, size, size) for c in (positive, negative)]).to(device, dtype)
    return x, t, context, y


# --- timing --------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_call(fn: Callable[[], Any], calls: int, device: torch.device) -> float:
    """Seconds per call over ``calls`` back-to-back calls (device work included)."""
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return (time.perf_counter() - start) / calls


def interleaved(cases: dict[str, Callable[[], float]], repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Run every case once per round, ``repeats`` rounds: (best, median) seconds of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(fn())
    return ({name: min(values) for name, values in times.items()},
            {name: statistics.median(values) for name, values in times.items()})


class ProgressSink:
    """Stands in for the server's listener: counts progress events and previews delivered."""

    def __init__(self) -> None:
        self.events = 0
        self.previews = 0

    def __call__(self, value: int, total: int, preview: Any) -> None:
        self.events += 1
        self.previews += preview is not None


def ksampler_seconds(model, positive, negative, size: int, steps: int, previews: bool, workdir: Path,
                     sink: ProgressSink) -> float:
    """One whole KSampler node run inside a node context, as the executor runs it (wall seconds)."""
    from engine import runtime
    from engine.paths import FolderPaths
    from nodes.sampling import KSampler

    services = runtime.Services(paths=FolderPaths(workdir),
                                settings={"preview_method": "latent2rgb" if previews else "none"})
    context = runtime.NodeContext("bench", "3", services, on_progress=sink)
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
    with runtime.node_context(context):
        start = time.perf_counter()
        KSampler().sample(model, SEED, steps, CFG, "euler", "normal", positive, negative, latent, 1.0)
        return time.perf_counter() - start


def rel_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.double().cpu(), reference.double().cpu()
    return float((value - reference).norm() / reference.norm())


# --- sections ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tiny = args.tiny
        self.device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.result: dict[str, Any] = {
            "device": torch.cuda.get_device_name() if self.device.type == "cuda" else "cpu",
            "torch": torch.__version__, "tiny": self.tiny, "dtype": str(self.dtype).removeprefix("torch."),
            "errors": {},
        }
        self.workdir = Path(tempfile.mkdtemp(prefix="lg-gpu-bench-"))

    def left(self) -> float:
        return self.args.deadline - (time.perf_counter() - T0)

    def section(self, name: str, fn: Callable[[], None], needs: float = 0.0) -> None:
        if self.left() < needs:
            log(f"{name}: skipped ({self.left():.0f} s left, needs ~{needs:.0f} s)")
            self.result["errors"][name] = "skipped: deadline"
            return
        log(f"{name} ...")
        try:
            fn()
        except Exception as exc:  # one broken section must not cost the others' figures
            traceback.print_exc()
            self.result["errors"][name] = f"{type(exc).__name__}: {exc}"[:500]
        self.save()

    def save(self) -> None:
        if self.args.json_out:
            Path(self.args.json_out).write_text(json.dumps(self.result, indent=1))

    def put(self, key: str, value: Any) -> None:
        self.result[key] = round(value, 5) if isinstance(value, float) else value
        log(f"  {key} = {self.result[key]}")
        self.save()

    # -- one family ---------------------------------------------------------------------------------
    def family(self, family: str, size: int, steps: int) -> None:
        from diffusion.checkpoint import load_checkpoint

        tag = f"{family}_{size}"
        state: dict[str, Any] = {}

        def load() -> None:
            if family == "sd1":
                path = self.workdir / "models" / "checkpoints" / self.checkpoint_name()
                started = time.perf_counter()
                write_sd15_checkpoint(path, self.tiny, self.device)
                self.put(f"{tag}_write_checkpoint_s", time.perf_counter() - started)
                started = time.perf_counter()
                loaded = load_checkpoint(path, ModelManager(self.device))
                state.update(model=loaded.model, clip=loaded.clip, vae=loaded.vae, path=path)
                self.put(f"{tag}_load_checkpoint_s", time.perf_counter() - started)
            else:
                state["model"] = sdxl_handle(self.tiny, self.device, self.dtype)
            model = state["model"]
            model.prepare()
            context_dim = model.unet_config.context_dim
            state["positive"] = conditioning(family, context_dim, size, 1)
            state["negative"] = conditioning(family, context_dim, size, 2)

        self.section(f"{tag} load", load)
        if "model" not in state:
            return
        model, positive, negative = state["model"], state["positive"], state["negative"]
        self.section(f"{tag} eager", lambda: self.eager(tag, model, positive, negative, size, steps))
        if family == "sd1" and "vae" in state:
            if not self.args.skip_vae_text:
                self.section(f"{tag} vae+text", lambda: self.vae_and_text(tag, state, size), needs=20)
            if not self.args.skip_cold_start:
                self.section("cold start", lambda: self.cold_start(state["path"]), needs=60)
        if not self.args.skip_compile:
            self.section(f"{tag} compiled", lambda: self.compiled(tag, model, positive, negative, size, steps),
                         needs=150 if family == "sdxl" and not self.tiny else 60)
        parity_size = size if family == "sd1" or self.tiny else self.args.sdxl_parity_size
        if not self.args.skip_parity:
            self.section(f"{tag} parity", lambda: self.parity(tag, model, positive, negative, parity_size), needs=30)
        if self.device.type == "cuda":
            self.put(f"{tag}_peak_gpu_gib", torch.cuda.max_memory_allocated() / 2**30)
            torch.cuda.reset_peak_memory_stats()
        state.clear()
        del model, positive, negative
        torch._dynamo.reset()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def checkpoint_name(self) -> str:
        return json.loads(WORKFLOW.read_text())["4"]["inputs"]["ckpt_name"]

    def step_timings(self, tag, suffix, model, positive, negative, size, steps,
                     bare: dict[str, Callable[[], Any]]) -> None:
        """KSampler seconds per step (previews off and on) interleaved with bare network calls;
        best and median. The cyclic GC is frozen meanwhile, so collections of the bench's own
        objects (diffusers and transformers models) cannot land in one case and not the other."""
        sinks = {previews: ProgressSink() for previews in (False, True)}

        def run(previews: bool) -> Callable[[], float]:
            return lambda: ksampler_seconds(model, positive, negative, size, steps, previews, self.workdir,
                                            sinks[previews]) / steps

        cases = {f"ksampler{suffix}": run(False), f"ksampler{suffix}_previews": run(True)}
        for name, fn in bare.items():
            cases[name] = lambda fn=fn: per_call(fn, self.args.calls, self.device)
        with torch.no_grad():
            for fn in bare.values():
                fn()  # warm-up
            gc.collect()
            gc.freeze()
            try:
                best, median = interleaved(cases, self.args.repeats)
            finally:
                gc.unfreeze()
        for name in cases:
            self.put(f"{tag}_{name}_its", 1.0 / best[name])
            self.put(f"{tag}_{name}_its_median", 1.0 / median[name])
        off, on = f"ksampler{suffix}", f"ksampler{suffix}_previews"
        self.put(f"{tag}_previews{suffix}_cost", best[on] / best[off] - 1.0)
        self.put(f"{tag}_previews{suffix}_cost_median", median[on] / median[off] - 1.0)
        self.put(f"{tag}_previews{suffix}_delivered_per_run", sinks[True].previews / self.args.repeats)
        bare_name = f"bare_unet{suffix}"
        if bare_name in cases:
            self.put(f"{tag}_ksampler{suffix}_vs_bare_unet", best[bare_name] / best[off])
            self.put(f"{tag}_ksampler{suffix}_vs_bare_unet_median", median[bare_name] / median[off])

    def eager(self, tag, model, positive, negative, size, steps) -> None:
        ksampler_seconds(model, positive, negative, size, 2, True, self.workdir, ProgressSink())  # warm-up
        x, t, context, y = unet_inputs(model, positive, negative, size, self.device, self.dtype)
        unet = model.diffusion_model
        bare: dict[str, Callable[[], Any]] = {"bare_unet": lambda: unet(x, t, context, y)}
        try:
            reference = diffusers_unet(model, size)
            kwargs: dict[str, Any] = {}
            if y is not None:
                pooled = y.shape[1] - 6 * 256
                sizes = torch.tensor([[size, size, 0, 0, size, size]] * 2, device=self.device, dtype=self.dtype)
                kwargs["added_cond_kwargs"] = {"text_embeds": y[:, :pooled], "time_ids": sizes}
            with torch.no_grad():
                ours_out = unet(x, t, context, y)
                ref_out = reference(x, t, encoder_hidden_states=context, **kwargs).sample
            self.put(f"{tag}_ours_vs_diffusers_rel_error", rel_error(ours_out, ref_out))
            bare["diffusers_unet"] = lambda: reference(x, t, encoder_hidden_states=context, **kwargs).sample
        except ImportError as exc:
            self.result["errors"][f"{tag} diffusers"] = str(exc)
        self.step_timings(tag, "", model, positive, negative, size, steps, bare)

    def compiled(self, tag, model, positive, negative, size, steps) -> None:
        try:
            self.compiled_with(tag, model, positive, negative, size, steps, True)
        except Exception as exc:
            if self.device.type != "cuda":
                raise
            # Keep a figure for the compiled code even if graph capture broke.
            traceback.print_exc()
            self.result["errors"][f"{tag} cuda graphs"] = f"{type(exc).__name__}: {exc}"[:500]
            torch._dynamo.reset()
            self.compiled_with(tag, model, positive, negative, size, steps, False)

    def compiled_with(self, tag, model, positive, negative, size, steps, graphs: bool) -> None:
        from diffusion.compile import CompiledUNet, cache_directory

        model.shared_network.compiled = CompiledUNet(model.diffusion_model, cuda_graphs=graphs)
        model.manager.compile_unet = True
        tag = tag if graphs else f"{tag}_no_cuda_graphs"
        try:
            started = time.perf_counter()
            ksampler_seconds(model, positive, negative, size, 3, False, self.workdir, ProgressSink())
            self.put(f"{tag}_compile_and_capture_s", time.perf_counter() - started)
            self.put("compile_cache_dir", str(cache_directory()))
            self.put("compile_cache_files", sum(1 for p in cache_directory().rglob("*") if p.is_file()))
            ksampler_seconds(model, positive, negative, size, 2, True, self.workdir, ProgressSink())
            compiled = model.shared_network.compiled
            x, t, context, y = unet_inputs(model, positive, negative, size, self.device, self.dtype)
            with torch.no_grad():
                out = compiled(x, t, context, y)
                eager_out = model.diffusion_model(x, t, context, y)
            self.put(f"{tag}_compiled_vs_eager_rel_error", rel_error(out, eager_out))
            self.step_timings(tag, "_compiled", model, positive, negative, size, steps,
                              {"bare_unet_compiled": lambda: compiled(x, t, context, y)})
        finally:
            model.manager.compile_unet = False

    def parity(self, tag, model, positive, negative, size) -> None:
        """fp16 on the device against fp32 on the CPU, same weights and inputs, one CFG call."""
        if self.device.type != "cuda":
            self.put(f"{tag}_parity_note", "no GPU: nothing to compare")
            return
        x, t, context, y = unet_inputs(model, positive, negative, size, self.device, self.dtype)
        with torch.no_grad():
            gpu = model.diffusion_model(x, t, context, y).float().cpu()
            cpu_unet = build_meta_unet(model.unet_config).to_empty(device="cpu")
            cpu_unet.load_state_dict({k: v.float().cpu() for k, v in model.diffusion_model.state_dict().items()})
            started = time.perf_counter()
            cpu = cpu_unet.eval()(x.float().cpu(), t.cpu(), context.float().cpu(), None if y is None else y.float().cpu())
        self.put(f"{tag}_parity_cpu_fp32_s", time.perf_counter() - started)
        self.put(f"{tag}_parity_size", size)
        self.put(f"{tag}_parity_fp16_gpu_vs_fp32_cpu_rel_error", rel_error(gpu, cpu))
        self.put(f"{tag}_parity_output_std", float(cpu.std()))

    def vae_and_text(self, tag, state, size) -> None:
        from diffusers import AutoencoderKL
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

        vae, clip = state["vae"], state["clip"]
        for decode_size in dict.fromkeys((size, 2 * size)):
            latent = torch.randn(1, 4, decode_size // 8, decode_size // 8, generator=torch.Generator().manual_seed(5))
            module = vae.model
            cfg = module.config
            config = {"in_channels": cfg.in_channels, "out_channels": cfg.out_ch,
                      "down_block_types": ["DownEncoderBlock2D"] * len(cfg.ch_mult),
                      "up_block_types": ["UpDecoderBlock2D"] * len(cfg.ch_mult),
                      "block_out_channels": [cfg.ch * m for m in cfg.ch_mult], "layers_per_block": cfg.num_res_blocks,
                      "latent_channels": cfg.z_channels}  # raw latents: the scaling factor plays no part
            vae.decode(latent[:, :, :8, :8])  # places the VAE on the device
            state_dict = {VAE_PREFIX + k: v for k, v in module.state_dict().items()}
            with torch.device("meta"):
                reference = AutoencoderKL(**config)
            reference.load_state_dict(convert_ldm_vae_checkpoint(state_dict, config), strict=True, assign=True)
            reference.eval().requires_grad_(False)
            dtype = vae.compute_dtype

            def theirs() -> torch.Tensor:
                with torch.no_grad():
                    z = latent.to(self.device, dtype)  # LATENT values are raw VAE latents
                    image = reference.decode(z).sample
                    return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu()

            ours_image, their_image = vae.decode(latent), theirs()
            self.put(f"vae_decode_{decode_size}_ours_vs_diffusers_max_abs", float((ours_image - their_image).abs().max()))
            best = interleaved({"ours": lambda: per_call(lambda: vae.decode(latent), 3, self.device),
                                "diffusers": lambda: per_call(theirs, 3, self.device)}, self.args.repeats)[0]
            self.put(f"vae_decode_{decode_size}_ours_s", best["ours"])
            self.put(f"vae_decode_{decode_size}_diffusers_s", best["diffusers"])
            del reference
        prompt = "beautiful scenery nature glass bottle landscape, purple galaxy bottle"
        encoder = next(iter(clip.encoders.values()))
        from diffusion.text.vocab import clip_tokenizer

        tokenizer = clip_tokenizer()

        def ours() -> Any:
            return clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True)

        def transformers_forward() -> Any:
            ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            with torch.no_grad():
                return encoder.model(ids.to(self.device)).last_hidden_state

        ours(), transformers_forward()
        best = interleaved({"ours": lambda: per_call(ours, 10, self.device),
                            "transformers": lambda: per_call(transformers_forward, 10, self.device)},
                           self.args.repeats)[0]
        self.put("text_encode_clip_l_ours_s", best["ours"])
        self.put("text_encode_clip_l_transformers_s", best["transformers"])

    def cold_start(self, checkpoint: Path) -> None:
        """``main.py run`` of the default workflow in a fresh process: seconds until the first
        sampling step has finished (the progress bar's first "1/N"), and until it exits."""
        steps = 3
        command = [sys.executable, "main.py", "run", str(WORKFLOW), "--base-directory", str(self.workdir),
                   "--set", f"3.steps={steps}", "--output-directory", str(self.workdir / "out")]
        if self.tiny:
            command += ["--cpu", "--set", "5.width=64", "--set", "5.height=64"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        for attempt in ("first", "second"):
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            first_step: list[float] = []
            captured = bytearray()

            def watch() -> None:
                while True:
                    chunk = process.stderr.read1(4096)
                    if not chunk:
                        return
                    captured.extend(chunk)
                    if not first_step and f", 1/{steps}]".encode() in captured:  # the sampler's postfix
                        first_step.append(time.perf_counter() - started)

            watcher = threading.Thread(target=watch)
            watcher.start()
            process.stdout.read()
            code = process.wait(timeout=300)
            watcher.join()
            total = time.perf_counter() - started
            if code != 0:
                raise RuntimeError(f"main.py run exited {code}: {captured.decode(errors='replace')[-800:]}")
            self.put(f"cold_start_{attempt}_first_step_s", first_step[0] if first_step else None)
            self.put(f"cold_start_{attempt}_total_s", total)
        probe = [sys.executable, "bench/startup_probe.py", str(checkpoint), "--size", "64" if self.tiny else "512"]
        for attempt in ("first", "second"):
            done = subprocess.run(probe + (["--cpu"] if self.tiny else []), cwd=REPO, env=env, check=True,
                                  capture_output=True, text=True)
            for name, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                self.put(f"startup_probe_{attempt}_{name}", value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="KSampler/UNet/VAE/text GPU benchmark (see the module docstring)")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU (smoke test)")
    parser.add_argument("--families", default="sd1,sdxl")
    parser.add_argument("--steps", type=int, default=0, help="sampler steps per timed run (0: 40 SD1.5, 30 SDXL)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the best is kept")
    parser.add_argument("--calls", type=int, default=20, help="UNet calls per bare-UNet timing")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--skip-vae-text", action="store_true")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--sdxl-parity-size", type=int, default=512, help="image size of the SDXL CPU-fp32 check")
    parser.add_argument("--deadline", type=float, default=480.0, help="seconds; later sections are skipped")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.calls = min(args.repeats, 1), min(args.calls, 2)
    bench = Bench(args)
    log(f"device {bench.result['device']}, torch {torch.__version__}")
    for family in args.families.split(","):
        size = 64 if args.tiny else {"sd1": 512, "sdxl": 1024}[family]
        steps = args.steps or (3 if args.tiny else {"sd1": 40, "sdxl": 30}[family])
        bench.family(family, size, steps)
    bench.result["elapsed_s"] = round(time.perf_counter() - T0, 1)
    bench.save()
    print(json.dumps(bench.result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
