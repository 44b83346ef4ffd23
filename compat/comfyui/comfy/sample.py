"""ComfyUI's `comfy.sample` for node packs: noise, and sampling a LATENT's samples with our pipeline.

Callbacks have ComfyUI's shape `callback(step, x0, x, total_steps)` (`x` is not provided: None).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from diffusion.sampling import Sampler
from diffusion.sampling.pipeline import (fix_empty_latent_channels, ksampler_sigmas, model_sampling_for,
                                         prepare_noise, run_sampler, slice_sigmas)

__all__ = ["fix_empty_latent_channels", "prepare_noise", "sample", "sample_custom"]

ComfyCallback = Callable[[int, torch.Tensor, Any, int], None]


def _ours(callback: ComfyCallback | None):
    if callback is None:
        return None
    return lambda step, total, x0: callback(step, x0, None, total)


def sample(model: Any, noise: torch.Tensor, steps: int, cfg: float, sampler_name: str, scheduler: str,
           positive: list, negative: list, latent_image: torch.Tensor, denoise: float = 1.0,
           disable_noise: bool = False, start_step: int | None = None, last_step: int | None = None,
           force_full_denoise: bool = False, noise_mask: torch.Tensor | None = None,
           sigmas: torch.Tensor | None = None, callback: ComfyCallback | None = None,
           disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """The denoised samples tensor (ComfyUI's `comfy.sample.sample`)."""
    if sigmas is None:
        sigmas = ksampler_sigmas(model_sampling_for(model), scheduler, sampler_name, steps, denoise)
    sigmas = slice_sigmas(sigmas, start_step, last_step, force_full_denoise)
    if sigmas is None:
        return latent_image
    if disable_noise:
        noise = torch.zeros_like(latent_image)
    samples, _ = run_sampler(model, Sampler(sampler_name), sigmas, noise, latent_image, positive, negative, cfg,
                             denoise_mask=noise_mask, seed=seed or 0, callback=_ours(callback))
    return samples


def sample_custom(model: Any, noise: torch.Tensor, cfg: float, sampler: Sampler, sigmas: torch.Tensor,
                  positive: list, negative: list, latent_image: torch.Tensor,
                  noise_mask: torch.Tensor | None = None, callback: ComfyCallback | None = None,
                  disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
    """Sample along given sigmas with a SAMPLER value (ComfyUI's `comfy.sample.sample_custom`)."""
    samples, _ = run_sampler(model, sampler, sigmas, noise, latent_image, positive, negative, cfg,
                             denoise_mask=noise_mask, seed=seed or 0, callback=_ours(callback))
    return samples
