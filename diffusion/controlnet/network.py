"""The ControlNet network (lllyasviel's ``cldm.ControlNet``): a trainable copy of the UNet encoder.

It sees the same noisy latent, timestep, text context and SDXL ``y`` as the UNet, plus a hint image
(8× the latent size) turned into a first-block feature map by ``input_hint_block``. After every
encoder block a zero-initialised 1×1 conv emits one residual, and ``middle_block_out`` one more.
Module names are the LDM ones, so ``control_model.*`` tensors load with ``load_state_dict``; the
encoder blocks are built by the UNet's own constructors (diffusion.models.unet).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from diffusion.models.blocks import timestep_embedding
from diffusion.models.unet import TimestepEmbedSequential, UNetConfig, embeddings, encoder, middle_block

# Widths of the original hint encoder (3→16→16→32→32→96→96→256→mc, three stride-2 steps).
DEFAULT_HINT_WIDTHS = (16, 32, 96, 256)


@dataclass(frozen=True)
class ControlNetConfig:
    """The UNet encoder it copies, plus the hint encoder's input channels and widths."""

    unet: UNetConfig
    hint_channels: int = 3
    hint_widths: tuple[int, ...] = DEFAULT_HINT_WIDTHS


def _hint_block(config: ControlNetConfig) -> TimestepEmbedSequential:
    """Convs with SiLU between: in→w0, then per width (w→w, w→next stride 2), finally →model_channels.

    LDM indices: convs at 0, 2, 4, …; each step halves the size, so 3 steps reach the latent size.
    """
    widths = config.hint_widths
    convs = [nn.Conv2d(config.hint_channels, widths[0], 3, padding=1)]
    for width, following in itertools.pairwise(widths):
        convs += [nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, following, 3, padding=1, stride=2)]
    convs.append(nn.Conv2d(widths[-1], config.unet.model_channels, 3, padding=1))
    layers: list[nn.Module] = []
    for conv in convs:
        layers += [conv, nn.SiLU()]
    return TimestepEmbedSequential(*layers[:-1])


class ControlNetModel(nn.Module):
    """``forward(x, hint, timesteps, context, y)`` → ComfyUI-layout residuals (unscaled)."""

    def __init__(self, config: ControlNetConfig) -> None:
        super().__init__()
        config.unet.validate()
        self.config = config
        self.time_embed, label_emb = embeddings(config.unet)
        if label_emb is not None:
            self.label_emb = label_emb
        self.input_blocks, skip_channels = encoder(config.unet)
        self.zero_convs = nn.ModuleList(TimestepEmbedSequential(nn.Conv2d(ch, ch, 1)) for ch in skip_channels)
        self.input_hint_block = _hint_block(config)
        self.middle_block = middle_block(config.unet)
        self.middle_block_out = TimestepEmbedSequential(nn.Conv2d(skip_channels[-1], skip_channels[-1], 1))

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def forward(
        self,
        x: torch.Tensor,
        hint: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor | None = None,
    ) -> dict[str, list[torch.Tensor]]:
        """Residuals for latent ``x`` [B,C,h,w] and ``hint`` [B,3,8h,8w] at float ``timesteps`` [B].

        ``"output"`` has one residual per encoder block in encoder order (the UNet pops them from
        the end onto its skips), ``"middle"`` the one added after the middle block.
        """
        dtype = self.dtype
        options: dict = {}
        emb = self.time_embed(timestep_embedding(timesteps, self.config.unet.model_channels).to(dtype))
        if self.config.unet.adm_in_channels is not None:
            if y is None:
                raise ValueError("this ControlNet needs the SDXL conditioning vector y")
            emb = emb + self.label_emb(y.to(dtype))
        context = context.to(dtype)
        guided_hint = self.input_hint_block(hint.to(dtype), emb, context)
        h = x.to(dtype)
        outputs = []
        for index, (block, zero_conv) in enumerate(zip(self.input_blocks, self.zero_convs)):
            h = block(h, emb, context, None, options)
            if index == 0:
                h = h + guided_hint
            outputs.append(zero_conv(h, emb, context))
        h = self.middle_block(h, emb, context, None, options)
        return {"middle": [self.middle_block_out(h, emb, context)], "output": outputs}
