"""Architecture facts per SD family: checkpoint prefixes, head-count defaults, full-size configs.

Widths and depths are always read from tensor shapes (see ``detect``); this module holds only what
shapes cannot tell (head counts, attention precision) and the reference full-size configurations
used by tests and benchmarks.
"""

from __future__ import annotations

from typing import Literal

from diffusion.models.unet import UNetConfig
from diffusion.models.vae import VAEConfig

Family = Literal["sd1", "sd2", "sdxl", "sdxl-refiner"]
FAMILIES: tuple[Family, ...] = ("sd1", "sd2", "sdxl", "sdxl-refiner")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

# Text-encoder prefixes, used both to confirm the family and to hand the text weights on.
TEXT_PREFIXES: dict[Family, tuple[str, ...]] = {
    "sd1": ("cond_stage_model.transformer.",),
    "sd2": ("cond_stage_model.model.",),
    "sdxl": ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."),
    "sdxl-refiner": ("conditioner.embedders.0.model.",),
}

# Head layout per family (not recoverable from shapes): SD1 fixes the count, the others the width.
HEAD_DEFAULTS: dict[Family, dict[str, int]] = {
    "sd1": {"num_heads": 8},
    "sd2": {"num_head_channels": 64},
    "sdxl": {"num_head_channels": 64},
    "sdxl-refiner": {"num_head_channels": 64},
}

# SD2 was trained with fp32 attention logits; fp16 overflows without the upcast.
UPCAST_ATTENTION: dict[Family, bool] = {"sd1": False, "sd2": True, "sdxl": False, "sdxl-refiner": False}

# Number of embedded size scalars in SDXL's ``y`` (pooled text comes first).
ADM_SCALARS: dict[Family, int] = {"sdxl": 6, "sdxl-refiner": 5}


def _depth_output(depth: tuple[int, ...], num_res_blocks: int) -> tuple[int, ...]:
    """Output-block depths mirror the input levels, one extra block per level."""
    levels = len(depth) // num_res_blocks
    per_level = [depth[level * num_res_blocks] for level in range(levels)]
    return tuple(d for d in reversed(per_level) for _ in range(num_res_blocks + 1))


def full_size_unet_config(family: Family, inpaint: bool = False) -> UNetConfig:
    """The released full-size UNet of a family (reference model-formats §1.3)."""
    if family in ("sd1", "sd2"):
        depth = (1, 1, 1, 1, 1, 1, 0, 0)
        return UNetConfig(
            model_channels=320,
            channel_mult=(1, 2, 4, 4),
            num_res_blocks=2,
            transformer_depth=depth,
            transformer_depth_middle=1,
            transformer_depth_output=_depth_output(depth, 2),
            context_dim=768 if family == "sd1" else 1024,
            in_channels=9 if inpaint else 4,
            use_linear_in_transformer=family == "sd2",
            upcast_attention=UPCAST_ATTENTION[family],
            **HEAD_DEFAULTS[family],
        )
    if family == "sdxl":
        depth = (0, 0, 2, 2, 10, 10)
        return UNetConfig(
            model_channels=320,
            channel_mult=(1, 2, 4),
            num_res_blocks=2,
            transformer_depth=depth,
            transformer_depth_middle=10,
            transformer_depth_output=_depth_output(depth, 2),
            context_dim=2048,
            in_channels=9 if inpaint else 4,
            use_linear_in_transformer=True,
            adm_in_channels=2816,
            **HEAD_DEFAULTS[family],
        )
    if family == "sdxl-refiner":
        depth = (0, 0, 4, 4, 4, 4, 0, 0)
        return UNetConfig(
            model_channels=384,
            channel_mult=(1, 2, 4, 4),
            num_res_blocks=2,
            transformer_depth=depth,
            transformer_depth_middle=4,
            transformer_depth_output=_depth_output(depth, 2),
            context_dim=1280,
            use_linear_in_transformer=True,
            adm_in_channels=2560,
            **HEAD_DEFAULTS[family],
        )
    raise ValueError(f"unknown family {family!r}")


def full_size_vae_config() -> VAEConfig:
    """The AutoencoderKL shared by every SD family."""
    return VAEConfig()
