"""Extracting a LoRA from a model difference (ComfyUI's "Extract and Save Lora", kohya's extract script).

Each weight difference ΔW [out, in(, kh, kw)] is factored by a truncated SVD into ``up`` [out, r]
and ``down`` [r, in(·kh·kw)] with ``up @ down ≈ ΔW``. As ComfyUI and kohya's sd-scripts do, the
singular values go into ``up`` and, when the rank truncates, both factors are clamped at the 99th
percentile of their joint values, which trims outliers that would otherwise dominate a low rank;
a full-rank extraction is left exact (ComfyUI clamps it too, losing the outliers for nothing). Files use kohya's names
(``lora_unet_<LDM path>``, ``lora_te_``/``lora_te1_``/``lora_te2_`` for the attention and MLP
layers of text encoders) with ``alpha = rank`` (scale 1); text weights kohya has no name for
(embeddings, norms, projection) use ComfyUI's generic ``text_encoders.<key>`` names. Both our
LoRA loader and ComfyUI's read every key.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Literal

import torch

log = logging.getLogger(__name__)

CLAMP_QUANTILE = 0.99
LoraType = Literal["standard", "full_diff"]
LORA_TYPES: tuple[LoraType, ...] = ("standard", "full_diff")
UNET_KEY_PREFIX = "diffusion_model."
# torch.quantile refuses inputs above this many elements; larger factors are sampled.
_QUANTILE_LIMIT = 16_000_000

_KOHYA_TEXT_LAYER = re.compile(r"^text_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])$")


def low_rank_factors(
    diff: torch.Tensor, rank: int, clamp_quantile: float | None = CLAMP_QUANTILE
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(up, down)`` with ``up @ down ≈ diff`` (conv weights: 1×1 ``up``, kh×kw ``down``), fp32.

    `rank` is capped at min(out, in); at that rank, or with `clamp_quantile` None, nothing is clamped.
    """
    if diff.ndim not in (2, 4):
        raise ValueError(f"a LoRA factors 2-D or 4-D weights, not shape {tuple(diff.shape)}")
    out_dim, in_dim = diff.shape[:2]
    matrix = diff.float().reshape(out_dim, -1)
    full_rank = min(matrix.shape)
    rank = max(1, min(rank, full_rank))
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    up = u[:, :rank] * s[:rank]
    down = vh[:rank]
    if clamp_quantile is not None and rank < full_rank:
        joint = torch.cat([up.flatten(), down.flatten()])
        if joint.numel() > _QUANTILE_LIMIT:
            joint = joint[torch.randperm(joint.numel(), generator=torch.Generator().manual_seed(0))[:_QUANTILE_LIMIT]]
        high = torch.quantile(joint, clamp_quantile).item()
        up, down = up.clamp(-high, high), down.clamp(-high, high)
    if diff.ndim == 4:
        up = up.reshape(out_dim, rank, 1, 1)
        down = down.reshape(rank, in_dim, *diff.shape[2:])
    return up, down


def unet_lora_name(key: str) -> str:
    """``diffusion_model.input_blocks.1.1.proj_in.weight`` → ``lora_unet_input_blocks_1_1_proj_in``."""
    module = key.removeprefix(UNET_KEY_PREFIX).rsplit(".", 1)[0]
    return "lora_unet_" + module.replace(".", "_")


def text_lora_name(key: str, encoders: set[str]) -> str:
    """The kohya name of a text-encoder weight key, else ComfyUI's generic ``text_encoders.`` name."""
    encoder, _, local = key.partition(".transformer.")
    module = local.rsplit(".", 1)[0]
    if _KOHYA_TEXT_LAYER.match(module):
        if encoders == {"clip_l", "clip_g"}:
            prefix = "lora_te1_" if encoder == "clip_l" else "lora_te2_"
        else:
            prefix = "lora_te_"
        return prefix + module.replace(".", "_")
    return "text_encoders." + key.rsplit(".", 1)[0]


def extract_lora(
    weights: Mapping[str, torch.Tensor],
    rank: int,
    lora_type: LoraType = "standard",
    bias_diff: bool = True,
    *,
    clamp_quantile: float | None = CLAMP_QUANTILE,
    dtype: torch.dtype = torch.float16,
) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA state dict for the differences `weights` (patch-contract keys).

    ``standard``: low-rank ``lora_up``/``lora_down`` (+ ``alpha``) for every ≥2-D weight; 1-D
    weights (norms) go in whole as ``.diff`` when `bias_diff`. ``full_diff``: every weight as a
    whole ``.diff``. `bias_diff` adds biases as ``.diff_b``. Stored in `dtype` (ComfyUI: fp16).
    """
    if lora_type not in LORA_TYPES:
        raise ValueError(f"lora_type must be one of {LORA_TYPES}, not {lora_type!r}")
    if rank < 1:
        raise ValueError(f"rank must be at least 1, not {rank}")
    encoders = {key.split(".", 1)[0] for key in weights if ".transformer." in key}
    out: dict[str, torch.Tensor] = {}
    for key, value in weights.items():
        name = unet_lora_name(key) if key.startswith(UNET_KEY_PREFIX) else text_lora_name(key, encoders)
        if key.endswith(".bias"):
            if bias_diff:
                out[name + ".diff_b"] = value.to(dtype).contiguous()
            continue
        if not key.endswith(".weight"):
            continue
        if lora_type == "full_diff" or value.ndim < 2:
            if lora_type == "full_diff" or bias_diff:
                out[name + ".diff"] = value.to(dtype).contiguous()
            continue
        if value.ndim not in (2, 4) or not torch.any(value):
            log.info("LoRA extraction: %s has no difference to factor; left out", key)
            continue
        up, down = low_rank_factors(value, rank, clamp_quantile)
        out[name + ".lora_up.weight"] = up.to(dtype).contiguous()
        out[name + ".lora_down.weight"] = down.to(dtype).contiguous()
        out[name + ".alpha"] = torch.tensor(float(down.shape[0]), dtype=dtype)
    return out
