"""Latent spaces of the SD VAEs: channel count, scale factor and the cheap RGB preview map."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentFormat:
    """How a family's VAE latents are scaled for the UNet and previewed as RGB.

    ``scale_factor`` brings the VAE's latents to roughly unit variance. LATENT values between nodes
    are raw VAE latents (ComfyUI's convention); the sampler applies :meth:`process_in` on the way
    into the model and :meth:`process_out` on the way back.
    """

    name: str
    channels: int
    scale_factor: float
    latent_rgb_factors: tuple[tuple[float, float, float], ...]
    latent_rgb_bias: tuple[float, float, float] | None = None
    downscale: int = 8

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw VAE latent → the model's (scaled) latent."""
        return latent * self.scale_factor

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        """The model's (scaled) latent → raw VAE latent."""
        return latent / self.scale_factor

    def to_rgb(self, latent: torch.Tensor) -> torch.Tensor:
        """Approximate image ``[B,h,w,3]`` in 0..1 from the model's scaled latents (sampler previews)."""
        factors = torch.tensor(self.latent_rgb_factors, dtype=torch.float32, device=latent.device)
        rgb = torch.einsum("bchw,cr->bhwr", latent.float(), factors)
        if self.latent_rgb_bias is not None:
            rgb = rgb + torch.tensor(self.latent_rgb_bias, device=latent.device)
        return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)


# Factors as published with ComfyUI's latent previews (comfy/latent_formats.py).
SD15 = LatentFormat(
    name="sd15",
    channels=4,
    scale_factor=0.18215,
    latent_rgb_factors=(
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
)

SDXL = LatentFormat(
    name="sdxl",
    channels=4,
    scale_factor=0.13025,
    latent_rgb_factors=(
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    latent_rgb_bias=(0.1084, -0.0175, -0.0011),
)

LATENT_FORMATS: dict[str, LatentFormat] = {"sd15": SD15, "sdxl": SDXL}


def latent_format_for_family(family: str) -> LatentFormat:
    """SD1/SD2 share the SD1.5 VAE latent space; SDXL and its refiner share SDXL's."""
    return SDXL if family.startswith("sdxl") else SD15
