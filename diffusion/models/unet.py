"""The Stable Diffusion UNet (LDM ``openaimodel.UNetModel``) for SD1.x, SD2.x, SDXL and the refiner.

One class covers every family; a small :class:`UNetConfig`, inferred from the checkpoint's tensor
shapes, says how many levels, which of them attend, how deep the transformers are and whether the
model takes SDXL's size/pooled-text vector (``label_emb``). Module names are the LDM ones, so a
checkpoint's ``model.diffusion_model.*`` tensors load with a plain ``load_state_dict``.

Reading order: config → constructor (encoder, middle, decoder) → forward.

``forward`` takes ComfyUI's ``transformer_options`` and honours its block hook points
(``emb_patch``, ``input_block_patch``, ``input_block_patch_after_skip``, ``output_block_patch``)
where ComfyUI's ``openaimodel.UNetModel`` does, keeping ``block``/``transformer_index`` current
for the attention hooks; see docs/MODEL_INTERFACE.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from diffusion.models.attention import SpatialTransformer
from diffusion.models.blocks import Downsample, ResBlock, Upsample, group_norm, timestep_embedding

# SDXL micro-conditioning: every size scalar becomes a 256-wide sinusoid inside ``y``.
ADM_SCALAR_WIDTH = 256


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of one UNet. Widths/depths come from tensor shapes, heads from family defaults.

    ``transformer_depth`` has one entry per input ResBlock (levels × num_res_blocks) and
    ``transformer_depth_output`` one per output block (levels × (num_res_blocks + 1)); 0 means the
    block has no SpatialTransformer. ``transformer_depth_middle`` ≥ 0 gives the usual middle
    ResBlock–transformer–ResBlock; distilled SDXL variants use -1 (one ResBlock) or -2 (no middle
    block), ComfyUI's convention. Exactly one of ``num_heads`` / ``num_head_channels`` is set:
    SD1 fixes the head count (8), SD2/SDXL fix the head width (64).
    """

    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    transformer_depth: tuple[int, ...]
    transformer_depth_middle: int
    transformer_depth_output: tuple[int, ...]
    context_dim: int
    in_channels: int = 4
    out_channels: int = 4
    num_heads: int = -1
    num_head_channels: int = -1
    use_linear_in_transformer: bool = False
    adm_in_channels: int | None = None
    upcast_attention: bool = False

    def heads(self, channels: int) -> tuple[int, int]:
        """``(heads, head_dim)`` for a transformer working at ``channels``."""
        if self.num_head_channels > 0:
            return channels // self.num_head_channels, self.num_head_channels
        return self.num_heads, channels // self.num_heads

    def validate(self) -> None:
        """Raise ValueError for inconsistent configs before we try to build a network from them."""
        levels = len(self.channel_mult)
        if len(self.transformer_depth) != levels * self.num_res_blocks:
            raise ValueError("transformer_depth needs one entry per input ResBlock")
        if len(self.transformer_depth_output) != levels * (self.num_res_blocks + 1):
            raise ValueError("transformer_depth_output needs one entry per output block")
        if (self.num_heads > 0) == (self.num_head_channels > 0):
            raise ValueError("set exactly one of num_heads / num_head_channels")
        for mult in self.channel_mult:
            heads, dim_head = self.heads(self.model_channels * mult)
            if heads * dim_head != self.model_channels * mult:
                raise ValueError(f"heads do not divide the width {self.model_channels * mult}")


class TimestepEmbedSequential(nn.Sequential):
    """A UNet block: layers that take the timestep embedding, the text context, or neither."""

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor,
        output_size: tuple[int, int] | None = None,
        transformer_options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context, transformer_options)
                if transformer_options is not None and "transformer_index" in transformer_options:
                    transformer_options["transformer_index"] += 1
            elif isinstance(layer, Upsample):
                x = layer(x, output_size)
            else:
                x = layer(x)
        return x


# The encoder half is shared with ControlNets (diffusion/controlnet), which copy it module by module.
def embeddings(config: UNetConfig) -> tuple[nn.Sequential, nn.Sequential | None]:
    """``time_embed`` and, for SDXL, ``label_emb`` (pooled text ⊕ embedded sizes, LDM "sequential")."""
    emb_ch = config.model_channels * 4
    time_embed = nn.Sequential(nn.Linear(config.model_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
    if config.adm_in_channels is None:
        return time_embed, None
    label_emb = nn.Sequential(
        nn.Sequential(nn.Linear(config.adm_in_channels, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
    )
    return time_embed, label_emb


def _transformer(config: UNetConfig, channels: int, depth: int) -> SpatialTransformer:
    heads, dim_head = config.heads(channels)
    return SpatialTransformer(
        channels, heads, dim_head, depth, config.context_dim, config.use_linear_in_transformer, config.upcast_attention
    )


def encoder(config: UNetConfig) -> tuple[nn.ModuleList, list[int]]:
    """``input_blocks`` and the channel count of each block's output (the skips).

    Per level ``num_res_blocks`` ResBlocks (+ transformer), then a stride-2 conv except at the end.
    """
    mc, emb_ch = config.model_channels, config.model_channels * 4
    blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(config.in_channels, mc, 3, padding=1))])
    skip_channels = [mc]
    ch = mc
    depths = iter(config.transformer_depth)
    for level, mult in enumerate(config.channel_mult):
        for _ in range(config.num_res_blocks):
            layers: list[nn.Module] = [ResBlock(ch, emb_ch, mult * mc)]
            ch = mult * mc
            depth = next(depths)
            if depth > 0:
                layers.append(_transformer(config, ch, depth))
            blocks.append(TimestepEmbedSequential(*layers))
            skip_channels.append(ch)
        if level != len(config.channel_mult) - 1:
            blocks.append(TimestepEmbedSequential(Downsample(ch)))
            skip_channels.append(ch)
    return blocks, skip_channels


def middle_block(config: UNetConfig) -> TimestepEmbedSequential:
    """ResBlock–transformer–ResBlock; depth -1 keeps one ResBlock, -2 none (distilled SDXL)."""
    ch, emb_ch = config.model_channels * config.channel_mult[-1], config.model_channels * 4
    middle: list[nn.Module] = []
    if config.transformer_depth_middle >= -1:
        middle.append(ResBlock(ch, emb_ch))
    if config.transformer_depth_middle >= 0:
        middle += [_transformer(config, ch, config.transformer_depth_middle), ResBlock(ch, emb_ch)]
    return TimestepEmbedSequential(*middle)


class UNetModel(nn.Module):
    """Denoising UNet: ``forward(x, timesteps, context, y)`` returns eps or v (as trained)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        mc = config.model_channels
        emb_ch = mc * 4
        nrb = config.num_res_blocks

        self.time_embed, label_emb = embeddings(config)
        if label_emb is not None:
            self.label_emb = label_emb
        self.input_blocks, skip_channels = encoder(config)
        self.middle_block = middle_block(config)
        ch = skip_channels[-1]

        # Decoder: per level nrb+1 blocks, each eating one skip; upsample at the end of a level.
        self.output_blocks = nn.ModuleList()
        depths = iter(config.transformer_depth_output)
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(nrb + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_ch, mc * mult)]
                ch = mc * mult
                depth = next(depths)
                if depth > 0:
                    layers.append(_transformer(config, ch, depth))
                if level != 0 and i == nrb:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1))

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor | None = None,
        control: dict[str, list[torch.Tensor | None]] | None = None,
        transformer_options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Predict the network target for latent ``x`` at (float) ``timesteps`` ``[B]``.

        ``control`` holds ControlNet/T2I residuals as ComfyUI lays them out: ``"input"`` (one per
        input block, consumed from the end), ``"middle"`` and ``"output"`` (in input-block order,
        consumed from the end by the output blocks). The lists are copied, never mutated.
        ``transformer_options`` is ComfyUI's per-call dict; this call writes its position keys.
        """
        control = {name: list(residuals) for name, residuals in (control or {}).items()}
        options = {} if transformer_options is None else transformer_options
        options["original_shape"] = list(x.shape)
        options["transformer_index"] = 0
        patches = options.get("patches") or {}
        dtype = self.time_embed[0].weight.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        for patch in patches.get("emb_patch", ()):
            emb = patch(emb, self.config.model_channels, options)
        if self.config.adm_in_channels is not None:
            if y is None:
                raise ValueError("this UNet needs the SDXL conditioning vector y")
            emb = emb + self.label_emb(y.to(dtype))

        h = x.to(dtype)
        context = context.to(dtype)
        skips = []
        for index, block in enumerate(self.input_blocks):
            options["block"] = ("input", index)
            h = _add_control(block(h, emb, context, None, options), control, "input")
            for patch in patches.get("input_block_patch", ()):
                h = patch(h, options)
            skips.append(h)
            for patch in patches.get("input_block_patch_after_skip", ()):
                h = patch(h, options)
        options["block"] = ("middle", 0)
        h = _add_control(self.middle_block(h, emb, context, None, options), control, "middle")
        for index, block in enumerate(self.output_blocks):
            options["block"] = ("output", index)
            skip = _add_control(skips.pop(), control, "output")
            for patch in patches.get("output_block_patch", ()):
                h, skip = patch(h, skip, options)
            h = torch.cat([h, skip], dim=1)
            # Upsample to the next skip's size so odd latent sizes round-trip.
            output_size = tuple(skips[-1].shape[-2:]) if skips else None
            h = block(h, emb, context, output_size, options)
        return self.out(h)


def _add_control(h: torch.Tensor, control: dict[str, list], name: str) -> torch.Tensor:
    residuals = control.get(name)
    if residuals:
        residual = residuals.pop()
        if residual is not None:
            h = h + residual.to(device=h.device, dtype=h.dtype)
    return h
