"""The CLIP_VISION value: images → CLIP_VISION_OUTPUT (hidden states and projected image embeds).

Preprocessing follows ComfyUI's (what workflows were tuned on): antialiased bicubic resize so the
short side is the model's input size then a center crop ("center"), or a squash to a square
("none"); values rounded to 8-bit levels; normalised with CLIP's mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import CLIPVisionModelWithProjection

from diffusion.memory import ModelManager

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_preprocess(
    image: torch.Tensor,
    size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    crop: bool = True,
) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` in 0..1 → normalised ``pixel_values`` ``[B,3,size,size]`` (ComfyUI's signature)."""
    pixels = image[..., :3].movedim(-1, 1).float()
    height, width = pixels.shape[-2:]
    if (height, width) != (size, size):
        if crop:
            scale = size / min(height, width)
            target = (round(height * scale), round(width * scale))
        else:
            target = (size, size)
        pixels = F.interpolate(pixels, size=target, mode="bicubic", antialias=True)
        top, left = (pixels.shape[-2] - size) // 2, (pixels.shape[-1] - size) // 2
        pixels = pixels[..., top : top + size, left : left + size]
    pixels = (pixels * 255.0).clamp(0, 255).round() / 255.0
    return (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@dataclass(frozen=True)
class ClipVisionOutput:
    """CLIP_VISION_OUTPUT with ComfyUI's fields; ``output["image_embeds"]`` works as in ComfyUI."""

    last_hidden_state: torch.Tensor  # [B, tokens, width]
    penultimate_hidden_states: torch.Tensor  # [B, tokens, width], second-to-last layer
    image_embeds: torch.Tensor  # [B, projection], projected pooled (class token) output
    mm_projected: torch.Tensor | None = None

    def __getitem__(self, key: str) -> torch.Tensor | None:
        return getattr(self, key)


class ClipVisionModel:
    """A loaded vision tower placed by the model manager."""

    def __init__(self, model: CLIPVisionModelWithProjection, manager: ModelManager, name: str = "") -> None:
        self.model = model
        self.manager = manager
        self.name = name
        self.image_size = int(model.config.image_size)
        manager.register(model, f"{name} (clip vision)" if name else "clip vision")

    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self.model)

    def encode_image(self, image: torch.Tensor, crop: bool = True) -> ClipVisionOutput:
        """IMAGE ``[B,H,W,C]`` → hidden states and image embeds (float32, CPU)."""
        self.manager.load(self.model)
        dtype = next(self.model.parameters()).dtype
        pixels = clip_preprocess(image, self.image_size, crop=crop).to(self.manager.device, dtype)
        with torch.no_grad():
            out = self.model(pixel_values=pixels, output_hidden_states=True)
        return ClipVisionOutput(
            last_hidden_state=out.last_hidden_state.float().cpu(),
            penultimate_hidden_states=out.hidden_states[-2].float().cpu(),
            image_embeds=out.image_embeds.float().cpu(),
        )
