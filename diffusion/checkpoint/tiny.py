"""Tiny random-weight checkpoints in the exact single-file key layout, for tests and demos.

The smallest widths that keep every key of the released models (reference model-formats §8.2):
UNet model_channels 32 with the family's levels, depths and channel-change pattern, VAE ch 32.
Head counts cannot be read from shapes, so they are written to the ``latentgraph.arch``
metadata, together with the prediction type. Deterministic per seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from diffusion.checkpoint.arch import UNET_PREFIX, VAE_PREFIX, Family, _depth_output
from diffusion.models.unet import ADM_SCALAR_WIDTH, UNetConfig, UNetModel
from diffusion.models.vae import AutoencoderKL, VAEConfig

VARIANTS: dict[str, tuple[Family, bool, str]] = {
    # variant: (family, inpaint, prediction)
    "sd1": ("sd1", False, "eps"),
    "sd1-inpaint": ("sd1", True, "eps"),
    "sd2": ("sd2", False, "eps"),
    "sd2-v": ("sd2", False, "v_prediction"),
    "sdxl": ("sdxl", False, "eps"),
    "sdxl-refiner": ("sdxl-refiner", False, "eps"),
}

TINY_MODEL_CHANNELS = 32
TINY_CONTEXT = {"sd1": 32, "sd2": 32, "sdxl": 96, "sdxl-refiner": 64}
TINY_POOLED = {"sdxl": 64, "sdxl-refiner": 64}
TINY_HEAD_CHANNELS = 8
TINY_VAE = VAEConfig(ch=32)


def tiny_unet_config(variant: str) -> UNetConfig:
    """The tiny UNet config of a variant (``sd1``, ``sd1-inpaint``, ``sd2``, ``sd2-v``, ``sdxl``, ``sdxl-refiner``)."""
    family, inpaint, _ = _variant(variant)
    heads: dict[str, int] = {"num_heads": 8} if family == "sd1" else {"num_head_channels": TINY_HEAD_CHANNELS}
    if family in ("sd1", "sd2"):
        depth, mult, middle, adm = (1, 1, 1, 1, 1, 1, 0, 0), (1, 2, 4, 4), 1, None
    elif family == "sdxl":
        depth, mult, middle = (0, 0, 2, 2, 10, 10), (1, 2, 4), 10
        adm = TINY_POOLED[family] + 6 * ADM_SCALAR_WIDTH
    else:
        depth, mult, middle = (0, 0, 4, 4, 4, 4, 0, 0), (1, 2, 4, 4), 4
        adm = TINY_POOLED[family] + 5 * ADM_SCALAR_WIDTH
    return UNetConfig(
        model_channels=TINY_MODEL_CHANNELS,
        channel_mult=mult,
        num_res_blocks=2,
        transformer_depth=depth,
        transformer_depth_middle=middle,
        transformer_depth_output=_depth_output(depth, 2),
        context_dim=TINY_CONTEXT[family],
        in_channels=9 if inpaint else 4,
        use_linear_in_transformer=family != "sd1",
        adm_in_channels=adm,
        upcast_attention=family == "sd2",
        **heads,
    )


def _variant(variant: str) -> tuple[Family, bool, str]:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown tiny family {variant!r}; choose from {', '.join(VARIANTS)}") from None


def _randomise_norms(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Give norm layers non-trivial affine parameters so parity tests exercise them."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                layer.weight.copy_(1.0 + 0.1 * torch.randn(layer.weight.shape, generator=generator))
                layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=generator))


def _text_state_dict(family: Family, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tiny text encoders of this family and their arch metadata (diffusion.text.tiny)."""
    from diffusion.text import tiny as text_tiny

    return (dict(text_tiny.tiny_text_encoder_state_dict(family, seed)),
            dict(text_tiny.tiny_text_arch_overrides(family)))


def tiny_checkpoint_state_dict(
    variant: str, seed: int = 0, *, include_text: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(state_dict, metadata)`` of a tiny checkpoint; same seed ⇒ identical tensors."""
    family, _inpaint, prediction = _variant(variant)
    config = tiny_unet_config(variant)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed + 1)
        unet = UNetModel(config)
        _randomise_norms(unet, generator)
        vae = AutoencoderKL(TINY_VAE)
        _randomise_norms(vae, generator)
    state = {UNET_PREFIX + k: v.detach().contiguous() for k, v in unet.state_dict().items()}
    state.update({VAE_PREFIX + k: v.detach().contiguous() for k, v in vae.state_dict().items()})
    text_arch: dict[str, Any] = {}
    if include_text:
        text_state, text_arch = _text_state_dict(family, seed)
        state.update(text_state)
    if prediction == "v_prediction":
        state["v_pred"] = torch.zeros(0)
    heads = (
        {"num_heads": config.num_heads}
        if config.num_heads > 0
        else {"num_head_channels": config.num_head_channels}
    )
    arch: dict[str, Any] = {
        "family": family,
        "variant": variant,
        "prediction": prediction,
        "tiny": True,
        "unet": heads,
    }
    arch.update(text_arch)
    return state, {"latentgraph.arch": json.dumps(arch, sort_keys=True)}


def write_tiny_checkpoint(
    path: str | Path,
    variant: str,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    include_text: bool = True,
) -> Path:
    """Write a tiny ``.safetensors`` checkpoint and return its path."""
    path = Path(path)
    state, metadata = tiny_checkpoint_state_dict(variant, seed, include_text=include_text)
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path
