"""Helpers every sampler shares: derivatives, ancestral steps, seeded noise, progress reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from diffusion.sampling.noise import (
    BrownianTreeNoiseSampler,
    NoiseSampler,
    default_noise_sampler,
)

Denoiser = Callable[..., torch.Tensor]
Callback = Callable[[dict[str, Any]], None] | None


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """ODE derivative dx/dσ = (x − x0)/σ (Karras et al. 2022, eq. 3)."""
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0):
    """Split a step into a deterministic part down to σ_down and fresh noise of size σ_up,
    with σ_down² + σ_up² = σ_to²."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def _setup(x: torch.Tensor, extra_args: dict | None):
    extra_args = {} if extra_args is None else extra_args
    return extra_args, x.new_ones([x.shape[0]])


def _seeded(x: torch.Tensor, extra_args: dict, noise_sampler: NoiseSampler | None) -> NoiseSampler:
    return noise_sampler or default_noise_sampler(x, seed=extra_args.get("seed"))


def _brownian(x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict, noise_sampler: NoiseSampler | None,
              queries: list | None = None):
    """The SDE samplers' noise: a seeded Brownian tree, whose known queries start computing now
    where that pays (see _prefetch_pays)."""
    if noise_sampler is not None:
        return noise_sampler
    positive = sigmas[sigmas > 0]
    sampler = BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=extra_args.get("seed"))
    if _prefetch_pays(x):
        if queries is None:
            queries = [(sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 1) if sigmas[i + 1] > 0]
        sampler.prefetch(queries)
    return sampler


def _prefetch_pays(x: torch.Tensor) -> bool:
    """Whether to compute Brownian increments ahead on a thread: only where the model runs elsewhere.

    With the model on an accelerator the CPU idles through each step, and the prefetch thread
    hides the tree's draws there. With the model on the CPU it only takes turns with the sampler
    for the GIL and the cores (measured slower on 2 cores), and the tree already draws in parallel.
    """
    return x.device.type != "cpu"


def _report(callback: Callback, x, i, sigma, sigma_hat, denoised) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise, noise_sampler_factory):
    """Karras' stochastic "churn": raise σ by a factor (1+γ) with fresh noise before the step."""
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        eps = noise_sampler_factory()(sigmas[i], sigmas[i + 1]) * s_noise
        x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def _lazy_noise(x, extra_args, noise_sampler):
    """Churn noise is rarely used: build the generator only when a step asks for it."""
    cache: list[NoiseSampler] = []

    def factory() -> NoiseSampler:
        if not cache:
            cache.append(_seeded(x, extra_args, noise_sampler))
        return cache[0]

    return factory


def _guided(model, x, sigma, extra_args) -> tuple[torch.Tensor, torch.Tensor]:
    """(guided x0, unconditional x0). CFG++ samplers step along the unconditional noise estimate;
    the guidance denoiser reports its uncond x0 into ``uncond_sink`` (computing it even at cfg 1)."""
    sink: dict[str, torch.Tensor] = {}
    denoised = model(x, sigma, uncond_sink=sink, **extra_args)
    if "uncond_denoised" not in sink:
        raise TypeError("CFG++ samplers need a guidance denoiser that reports its unconditional estimate "
                        "(KSampler, SamplerCustom or a GUIDER)")
    return denoised, sink["uncond_denoised"]

