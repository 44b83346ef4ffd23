"""Image embeds as UNet conditioning: stable unCLIP's ``y`` and SDXL "revision" pooled embeds.

unCLIPConditioning records ``{"clip_vision_output", "strength", "noise_augmentation"}`` entries
under the conditioning key ``unclip_conditioning`` (ComfyUI's shape). At sampling time each image
embed is normalised with the checkpoint's CLIP statistics, noised to a level on a 1000-step
squared-cosine schedule (``noise_augmentation`` 0..1 → level 0..999), un-normalised, and
concatenated with the sinusoidal embedding of that level, times ``strength``. Several embeds are
summed and augmented once more at ``merge_noise``. stable unCLIP uses the whole vector as ``y``;
SDXL keeps its first 1280 values as the pooled embedding (revision).

The noise is drawn from a CPU generator seeded with ``seed`` (ComfyUI passes the sampler seed − 10;
our ``encode_adm`` has no sampler seed and uses 0, so noised embeds are reproducible but not
ComfyUI's bit for bit when ``noise_augmentation`` > 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from diffusion.models.blocks import timestep_embedding

TIMESTEPS = 1000
MAX_BETA = 0.999
SDXL_POOLED_WIDTH = 1280
UNCLIP_SEED = 0


def squared_cosine_alphas_cumprod(timesteps: int = TIMESTEPS) -> torch.Tensor:
    """ᾱ_t of the "squaredcos_cap_v2" schedule (Nichol & Dhariwal 2021), betas capped at 0.999."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), MAX_BETA) for i in range(timesteps)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float64), dim=0)


class NoiseAugmentor:
    """stable unCLIP's ``noise_augmentor``: noise CLIP image embeds in normalised space."""

    def __init__(self, dim: int, data_mean: torch.Tensor | None = None, data_std: torch.Tensor | None = None) -> None:
        self.dim = dim
        self.data_mean = torch.zeros(1, dim) if data_mean is None else data_mean.float().reshape(1, dim)
        self.data_std = torch.ones(1, dim) if data_std is None else data_std.float().reshape(1, dim)
        self.alphas_cumprod = squared_cosine_alphas_cumprod()
        self.max_noise_level = TIMESTEPS

    def level(self, noise_augmentation: float) -> int:
        return round((self.max_noise_level - 1) * float(noise_augmentation))

    def __call__(self, embeds: torch.Tensor, level: int, noise: torch.Tensor) -> torch.Tensor:
        """``[B, dim]`` embeds → noised embeds ⊕ level embedding, ``[B, 2·dim]``."""
        abar = self.alphas_cumprod[level]
        scaled = (embeds.float() - self.data_mean) / self.data_std
        noised = abar.sqrt().float() * scaled + (1 - abar).sqrt().float() * noise.float()
        noised = noised * self.data_std + self.data_mean
        level_embedding = timestep_embedding(torch.tensor([float(level)]), self.dim).expand(noised.shape[0], -1)
        return torch.cat([noised, level_embedding], dim=1)

    def seeded(self, embeds: torch.Tensor, level: int, seed: int) -> torch.Tensor:
        noise = torch.randn(embeds.shape, generator=torch.Generator().manual_seed(seed))
        return self(embeds, level, noise)


def noise_augmentor_from_checkpoint(state_dict: dict[str, torch.Tensor], adm: int) -> NoiseAugmentor:
    """stable unCLIP's augmentor: the image-embed statistics a checkpoint stores (``noise_augmentor.``)."""
    return NoiseAugmentor(
        adm // 2, state_dict.get("noise_augmentor.data_mean"), state_dict.get("noise_augmentor.data_std")
    )


def unclip_adm(
    entries: Sequence[dict[str, Any]], augmentor: NoiseAugmentor, merge_noise: float = 0.0, seed: int = UNCLIP_SEED
) -> torch.Tensor:
    """The ``[1, 2·dim]`` ADM vector of a list of unCLIPConditioning entries (see module doc)."""
    parts = []
    for entry in entries:
        embeds = entry["clip_vision_output"].image_embeds.float().cpu()
        if embeds.shape[-1] != augmentor.dim:
            raise ValueError(
                f"CLIP vision image embeds have width {embeds.shape[-1]}; this model expects {augmentor.dim} "
                "(use the CLIP vision model that belongs to the checkpoint)"
            )
        level = augmentor.level(entry["noise_augmentation"])
        for row in embeds.reshape(-1, augmentor.dim):
            parts.append(augmentor.seeded(row[None], level, seed) * float(entry["strength"]))
    if len(parts) == 1:
        return parts[0]
    summed = torch.stack(parts).sum(0)
    return augmentor.seeded(summed[:, : augmentor.dim], augmentor.level(merge_noise), seed)


def revision_pooled(entries: Sequence[dict[str, Any]], width: int = SDXL_POOLED_WIDTH) -> torch.Tensor:
    """SDXL revision: the pooled embedding (``width``: 1280, the bigG projection) taken from image
    embeds, augmented with default statistics (SDXL files carry none)."""
    return unclip_adm(entries, NoiseAugmentor(width))[:, :width]


def add_unclip_conditioning(
    conditioning: list[list[Any]], clip_vision_output: Any, strength: float, noise_augmentation: float
) -> list[list[Any]]:
    """unCLIPConditioning: append an image entry to every conditioning entry (strength 0: unchanged)."""
    if strength == 0:
        return conditioning
    entry = {"clip_vision_output": clip_vision_output, "strength": strength, "noise_augmentation": noise_augmentation}
    return [
        [tensor, {**options, "unclip_conditioning": [*options.get("unclip_conditioning", []), entry]}]
        for tensor, options in conditioning
    ]
