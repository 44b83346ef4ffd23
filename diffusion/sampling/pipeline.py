"""The KSampler pipeline: sigmas for steps/denoise/start/end, initial noise, inpaint masking,
guidance, and the sampler run, with a per-step callback for progress and previews."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from diffusion.sampling.guidance import CFGDenoiser, CondChunk, prepare_conds
from diffusion.sampling.model_sampling import DiscreteModelSampling, model_sampling_from_config
from diffusion.sampling.noise import cpu_generator, prepare_noise
from diffusion.sampling.samplers import (
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS,
    NODE_SAMPLERS,
    RANDOM_INPAINT_NOISE_SAMPLERS,
    SAMPLERS,
)
from diffusion.sampling.schedulers import calculate_sigmas

StepCallback = Callable[[int, int, torch.Tensor], None]
# (model, model_sampling, prepared conditionings by name, max_batch) -> the denoiser a sampler calls
DenoiserFactory = Callable[[Any, DiscreteModelSampling, dict[str, list[CondChunk]], "int | None"], Any]


@dataclass(frozen=True)
class Sampler:
    """A SAMPLER value: a sampler function by name (SAMPLERS, or NODE_SAMPLERS for those only
    Sampler* nodes make) plus fixed keyword options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS and self.name not in NODE_SAMPLERS:
            raise ValueError(f"unknown sampler {self.name!r}; expected one of {', '.join(SAMPLERS)}")

    @property
    def function(self) -> Callable[..., torch.Tensor]:
        return SAMPLERS.get(self.name) or NODE_SAMPLERS[self.name]


def model_sampling_for(model: Any) -> DiscreteModelSampling:
    """The sigma table of a ModelHandle (rebuilt from its sampling_config: a cheap table)."""
    return model_sampling_from_config(model.sampling_config)


def ksampler_sigmas(ms: DiscreteModelSampling, scheduler: str, sampler_name: str, steps: int,
                    denoise: float = 1.0) -> torch.Tensor:
    """KSampler's schedule: for denoise < 1, plan int(steps/denoise) steps and keep the last
    steps+1 sigmas (img2img starts part-way down the same schedule)."""
    if denoise is None or denoise > 0.9999:
        return _schedule(ms, scheduler, sampler_name, steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return _schedule(ms, scheduler, sampler_name, int(steps / denoise))[-(steps + 1):]


def _schedule(ms, scheduler, sampler_name, steps):
    if sampler_name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
        sigmas = calculate_sigmas(ms, scheduler, steps + 1)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return calculate_sigmas(ms, scheduler, steps)


def slice_sigmas(sigmas: torch.Tensor, start_step: int | None, last_step: int | None,
                 force_full_denoise: bool) -> torch.Tensor | None:
    """KSamplerAdvanced's step window; None means "nothing to do, return the input latent"."""
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            return None
    return sigmas


def fix_empty_latent_channels(model: Any, latent: torch.Tensor) -> torch.Tensor:
    """An all-zero latent (EmptyLatentImage) adopts the model's channel count."""
    channels = getattr(getattr(model, "latent_format", None), "channels", latent.shape[1])
    if latent.shape[1] != channels and torch.count_nonzero(latent) == 0:
        return torch.zeros((latent.shape[0], channels, *latent.shape[2:]), dtype=latent.dtype)
    return latent


def prepare_mask(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A noise mask at latent size, one copy per channel and batch entry."""
    mask = mask.float().reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
    mask = F.interpolate(mask, size=(shape[2], shape[3]), mode="bilinear")
    mask = mask.repeat(1, shape[1], 1, 1)
    if mask.shape[0] < shape[0]:
        mask = mask.repeat((shape[0] + mask.shape[0] - 1) // mask.shape[0], 1, 1, 1)
    return mask[: shape[0]]


def default_max_batch(model: Any, latent_shape: torch.Size) -> int | None:
    """How many latent samples fit one model call; unlimited on the CPU (no memory cliff)."""
    device = torch.device(getattr(model, "load_device", "cpu"))
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    element = torch.finfo(getattr(model, "compute_dtype", torch.float16)).bits // 8
    per_sample = latent_shape[2] * latent_shape[3] * element * 0.01 * 2.0 * 1024 * 1024
    return max(latent_shape[0], int(free * 0.8 // per_sample))


class _InpaintDenoiser:
    """Keeps the known latent outside the mask: re-noised to σ on the way in, exact on the way out.

    A model's ``denoise_mask_function`` (ComfyUI hook) may reshape the mask at every step.
    """

    def __init__(self, inner, mask, latent, noise, mask_function=None, hook_extra=None):
        self.inner, self.mask, self.latent, self.noise = inner, mask, latent, noise
        self.mask_function, self.hook_extra = mask_function, hook_extra

    def __call__(self, x, sigma, **kwargs):
        mask = self.mask
        if self.mask_function is not None:
            mask = self.mask_function(sigma, mask, extra_options=self.hook_extra)
        keep = 1.0 - mask
        s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        x = x * mask + (self.latent + self.noise * s) * keep
        return self.inner(x, sigma, **kwargs) * mask + self.latent * keep


def run_sampler(
    model: Any,
    sampler: Sampler,
    sigmas: torch.Tensor,
    noise: torch.Tensor,
    latent_image: torch.Tensor,
    positive: list,
    negative: list,
    cfg: float,
    *,
    denoise_mask: torch.Tensor | None = None,
    seed: int | None = None,
    callback: StepCallback | None = None,
    max_batch: int | None = None,
    conditioning: dict[str, list] | None = None,
    guidance: DenoiserFactory | None = None,
    on_device: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sample from ``noise``/``latent_image`` along ``sigmas``; returns (samples, last x0).

    Guidance is CFG over positive/negative unless a GUIDER passes its own named ``conditioning``
    and a ``guidance`` factory building the denoiser from them (diffusion.sampling.guiders).
    Latents in and out are raw VAE latents (ComfyUI's LATENT convention); the model's latent format
    scales them on the way in and back on the way out (ComfyUI's process_latent_in/out), so the
    sampler, the inpaint mask and the previews work in the model's scaled space.
    Runs on the model's device in float32 and returns CPU tensors (``on_device``: the device's).

    Everything the loop needs goes to the device before it starts, and the schedule stays on the
    host: samplers branch on σ values every step, and reading a device tensor back (``.item()``,
    ``if t == 0``, a copy to the host) would make the host wait for the device queue each step.
    """
    if len(sigmas) == 0 or len(sigmas) == 1:
        return latent_image, None
    channels = getattr(getattr(model, "latent_format", None), "channels", latent_image.shape[1])
    if latent_image.ndim != 4 or latent_image.shape[1] != channels:
        raise ValueError(f"latent of shape {tuple(latent_image.shape)} does not fit this model, which expects "
                         f"[batch, {channels}, height/8, width/8] latents (was it made for another model family?)")
    ms = model_sampling_for(model)
    device = torch.device(getattr(model, "load_device", "cpu"))
    prepare = getattr(model, "prepare", None)
    if prepare is not None:
        prepare()  # weights placed and patches merged now, not inside the first step
    ms.log_sigmas_on(device)
    latent_format = model.latent_format
    latent = latent_format.process_in(latent_image.to(device, torch.float32))
    sigmas = sigmas.detach().to("cpu", torch.float32)
    mask = prepare_mask(denoise_mask, latent.shape).to(device) if denoise_mask is not None else None
    conditioning = dict(conditioning or {"positive": positive, "negative": negative})
    if "positive" in conditioning and "negative" in conditioning:
        # imported here: diffusion.controlnet's loader imports the checkpoint loader, which imports us
        from diffusion.controlnet.apply import controls_to_uncond

        conditioning["negative"] = controls_to_uncond(conditioning["positive"], conditioning["negative"])
    conds = {
        name: prepare_conds(c, model, ms, latent.shape, latent_image=latent, denoise_mask=mask, device=device)
        for name, c in conditioning.items()
    }
    if max_batch is None:
        max_batch = default_max_batch(model, latent.shape)
    if guidance is None:
        denoiser: Any = CFGDenoiser(model, ms, conds["positive"], conds["negative"], cfg, max_batch)
    else:
        denoiser = guidance(model, ms, conds, max_batch)
    noise = noise.to(device, torch.float32)
    if mask is not None:
        inpaint_noise = noise
        if sampler.name in RANDOM_INPAINT_NOISE_SAMPLERS:
            generator = cpu_generator(((seed if seed is not None else 41) + 1) % (2**64))
            inpaint_noise = torch.randn(noise.shape, generator=generator).to(device)
        mask_function = (getattr(model, "model_options", None) or {}).get("denoise_mask_function")
        hook_extra = {"model": getattr(model, "model", model), "sigmas": sigmas}
        denoiser = _InpaintDenoiser(denoiser, mask, latent, inpaint_noise, mask_function, hook_extra)
    x = ms.noise_scaling(sigmas[0], noise, latent, max_denoise=ms.is_max_denoise(float(sigmas[0])))
    total = len(sigmas) - 1
    last_x0: dict[str, torch.Tensor] = {}

    def on_step(info: dict[str, Any]) -> None:
        last_x0["x0"] = info["denoised"]
        if callback is not None:
            callback(min(int(info["i"]), total - 1), total, info["denoised"])

    samples = sampler.function(denoiser, x, sigmas, extra_args={"seed": seed, "model_sampling": ms}, callback=on_step, **sampler.options)
    x0 = last_x0.get("x0")
    samples, x0 = latent_format.process_out(samples), None if x0 is None else latent_format.process_out(x0)
    if on_device:
        return samples, x0
    return samples.cpu(), None if x0 is None else x0.cpu()


def common_ksampler(
    model: Any,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: list,
    negative: list,
    latent: dict[str, Any],
    *,
    denoise: float = 1.0,
    add_noise: bool = True,
    start_step: int | None = None,
    last_step: int | None = None,
    force_full_denoise: bool = False,
    callback: StepCallback | None = None,
) -> dict[str, Any]:
    """KSampler / KSamplerAdvanced: a new LATENT dict (the input dict is never mutated)."""
    sampler = Sampler(sampler_name)
    latent_image = fix_empty_latent_channels(model, latent["samples"])
    if add_noise:
        noise = prepare_noise(latent_image, seed, latent.get("batch_index"))
    else:
        noise = torch.zeros(latent_image.shape, dtype=latent_image.dtype)
    sigmas = ksampler_sigmas(model_sampling_for(model), scheduler, sampler_name, steps, denoise)
    sigmas = slice_sigmas(sigmas, start_step, last_step, force_full_denoise)
    out = dict(latent)
    if sigmas is None:
        out["samples"] = latent_image
        return out
    samples, _ = run_sampler(model, sampler, sigmas, noise, latent_image, positive, negative, cfg,
                             denoise_mask=latent.get("noise_mask"), seed=seed, callback=callback)
    out["samples"] = samples
    return out


def sample_custom(
    model: Any,
    sampler: Sampler,
    sigmas: torch.Tensor,
    positive: list,
    negative: list,
    cfg: float,
    latent: dict[str, Any],
    *,
    add_noise: bool = True,
    seed: int = 0,
    callback: StepCallback | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """SamplerCustom: sample along given sigmas; returns (output, denoised_output) LATENTs."""
    latent_image = fix_empty_latent_channels(model, latent["samples"])
    if add_noise:
        noise = prepare_noise(latent_image, seed, latent.get("batch_index"))
    else:
        noise = torch.zeros(latent_image.shape, dtype=latent_image.dtype)
    samples, x0 = run_sampler(model, sampler, sigmas, noise, latent_image, positive, negative, cfg,
                              denoise_mask=latent.get("noise_mask"), seed=seed, callback=callback)
    out, denoised = dict(latent), dict(latent)
    out["samples"] = samples
    denoised["samples"] = samples if x0 is None else x0
    return out, denoised


# The high-level entry point: sample a LATENT the way KSampler does.
sample = common_ksampler
