"""NOISE values for SamplerCustomAdvanced (ComfyUI's interface: ``seed`` and
``generate_noise(input_latent)``): the initial noise a sampler starts from."""

from __future__ import annotations

from typing import Any

import torch

from diffusion.sampling.noise import prepare_noise


class RandomNoise:
    """KSampler's noise for ``seed``: drawn on the CPU, per batch index when the latent has one."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def generate_noise(self, input_latent: dict[str, Any]) -> torch.Tensor:
        return prepare_noise(input_latent["samples"], self.seed, input_latent.get("batch_index"))


class EmptyNoise:
    """No noise: sample the latent as it is (a second pass over a half-denoised latent)."""

    seed = 0

    def generate_noise(self, input_latent: dict[str, Any]) -> torch.Tensor:
        samples = input_latent["samples"]
        return torch.zeros(samples.shape, dtype=samples.dtype, layout=samples.layout, device="cpu")
