"""Build diffusers reference networks from the same tiny checkpoint our loader reads.

The diffusers configs are derived by hand from the inferred LDM config (model-formats §7.2: the
library's own config builders mis-detect tiny SDXL widths); the weights go through diffusers'
``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint`` — an independent key mapping.
"""

from __future__ import annotations

from typing import Any

import torch

from diffusion.models.unet import UNetConfig
from diffusion.models.vae import VAEConfig


def diffusers_unet_config(cfg: UNetConfig) -> dict[str, Any]:
    levels = len(cfg.channel_mult)
    nrb = cfg.num_res_blocks
    level_depth = [cfg.transformer_depth[level * nrb] for level in range(levels)]
    widths = [cfg.model_channels * mult for mult in cfg.channel_mult]
    # diffusers' "attention_head_dim" is, for legacy reasons, the number of heads.
    heads: Any = [w // cfg.num_head_channels for w in widths] if cfg.num_head_channels > 0 else cfg.num_heads
    config: dict[str, Any] = {
        "sample_size": 8,
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "down_block_types": ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in level_depth],
        "up_block_types": ["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in reversed(level_depth)],
        "block_out_channels": widths,
        "layers_per_block": nrb,
        "cross_attention_dim": cfg.context_dim,
        "attention_head_dim": heads,
        "use_linear_projection": cfg.use_linear_in_transformer,
        "transformer_layers_per_block": [d or cfg.transformer_depth_middle for d in level_depth],
        "upcast_attention": cfg.upcast_attention,
    }
    if cfg.adm_in_channels is not None:
        config.update(
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=cfg.adm_in_channels,
        )
    return config


def diffusers_unet(state_dict: dict[str, torch.Tensor], cfg: UNetConfig):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = diffusers_unet_config(cfg)
    converted = convert_ldm_unet_checkpoint(dict(state_dict), config)
    with torch.device("meta"):  # skip random init: every weight comes from the file
        model = UNet2DConditionModel(**config)
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval().float()


def diffusers_vae(state_dict: dict[str, torch.Tensor], cfg: VAEConfig, scaling_factor: float):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = {
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_ch,
        "down_block_types": ["DownEncoderBlock2D"] * len(cfg.ch_mult),
        "up_block_types": ["UpDecoderBlock2D"] * len(cfg.ch_mult),
        "block_out_channels": [cfg.ch * m for m in cfg.ch_mult],
        "layers_per_block": cfg.num_res_blocks,
        "latent_channels": cfg.z_channels,
        "scaling_factor": scaling_factor,
    }
    converted = convert_ldm_vae_checkpoint(dict(state_dict), config)
    with torch.device("meta"):
        model = AutoencoderKL(**config)
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval().float()
