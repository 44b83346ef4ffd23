"""Random-weight text encoders in the exact checkpoint key layout, at the tiny widths tests use.

Widths are the smallest that keep every key (shared/reference/model-formats.md §8.2): the vocabulary
(49408), the 77 positions and the layer counts (12 / 24 / 32) are kept; only widths shrink. Head
counts cannot be read from shapes, so the checkpoint writer stores `tiny_text_arch_overrides(family)`
as the ``"text"`` part of the ``"latentgraph.arch"`` safetensors metadata (format: diffusion.text.arch).
"""

from __future__ import annotations

import torch

from diffusion.text.arch import CONTEXT_LENGTH, EncoderArch, family_slots
from diffusion.text.convert import canonical_key_shapes, open_clip_key_shapes

TINY: dict[str, EncoderArch] = {
    "clip_l": EncoderArch("clip_l", width=32, layers=12, heads=4, ffn=128, hidden_act="quick_gelu"),
    "clip_h": EncoderArch("clip_h", width=32, layers=24, heads=4, ffn=128, projection_dim=32, hidden_act="gelu"),
    "clip_g": EncoderArch("clip_g", width=64, layers=32, heads=4, ffn=256, projection_dim=64, hidden_act="gelu"),
}


def tiny_text_arch_overrides(family: str) -> dict[str, dict[str, dict[str, int]]]:
    """The ``{"text": {...}}`` part of ``"latentgraph.arch"`` that matches the tiny weights."""
    return {"text": {slot.name: {"heads": TINY[slot.name].heads} for slot in family_slots(family)}}


def _random_tensor(name: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Values with realistic magnitudes so activations neither vanish nor explode through 32 layers."""
    if not shape:  # logit_scale
        return torch.tensor(4.6052)
    base = name.rsplit(".", 1)[-1]
    is_norm = any(part in name for part in ("layer_norm", "ln_", "final_layer_norm"))
    noise = torch.randn(shape, generator=generator)
    if is_norm and base == "weight":
        return 1.0 + 0.1 * noise
    if base in ("bias", "in_proj_bias") or is_norm:
        return 0.05 * noise
    if "embedding" in name:
        return 0.1 * noise
    fan_in = shape[-1] if name != "text_projection" else shape[0]
    return noise * fan_in**-0.5


def _random_weights(shapes: dict[str, tuple[int, ...]], generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: _random_tensor(name, shape, generator) for name, shape in shapes.items()}


def tiny_text_encoder_state_dict(
    family: str, seed: int, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Random text-encoder weights of `family` with full checkpoint prefixes, deterministic per seed.

    SD1/SDXL CLIP-L use HF names under ``...transformer.text_model.`` (with the ``position_ids``
    buffer real files carry); SD2 ViT-H and SDXL bigG use OpenCLIP native names with
    ``text_projection`` and ``logit_scale``.
    """
    return random_text_encoder_state_dict(family, seed, TINY, dtype)


def random_text_encoder_state_dict(
    family: str, seed: int, archs: dict[str, EncoderArch], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Like `tiny_text_encoder_state_dict` for any sizes (bench/ uses diffusion.text.arch.FULL_SIZE)."""
    state: dict[str, torch.Tensor] = {}
    for index, slot in enumerate(family_slots(family)):
        generator = torch.Generator().manual_seed(seed * 1000 + index)
        arch = archs[slot.name]
        if slot.layout == "hf":
            prefix = slot.prefix + "text_model."
            weights = _random_weights(canonical_key_shapes(arch), generator)
            weights["embeddings.position_ids"] = torch.arange(CONTEXT_LENGTH, dtype=torch.int64)[None]
        else:
            prefix = slot.prefix
            weights = _random_weights(open_clip_key_shapes(arch), generator)
        for name, tensor in weights.items():
            state[prefix + name] = tensor if not tensor.is_floating_point() else tensor.to(dtype)
    return state
