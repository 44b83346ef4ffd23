"""Reading CLIP vision towers as distributed (HF ``vision_model.*`` or OpenCLIP ``visual.*``) into
transformers' ``CLIPVisionModelWithProjection``; the architecture comes from tensor shapes.

Head counts and the activation are not in the shapes: released towers all use 16 heads (ViT-B: 12),
OpenAI's ViT-L/14 uses quick_gelu and the OpenCLIP towers (ViT-H, bigG) gelu, as ComfyUI assumes.
A safetensors ``latentgraph.arch`` entry ``{"clip_vision": {"heads": n, "hidden_act": a}}``
overrides both (tiny test files use it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from diffusion.checkpoint.errors import CheckpointError
from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
from diffusion.memory import ModelManager
from diffusion.text.convert import _OPEN_CLIP_BLOCK, _OPEN_CLIP_BLOCK_MAP

HF_PREFIX = "vision_model."
OPEN_CLIP_PREFIX = "visual."
_HF_MARKER = "vision_model.encoder.layers.0.layer_norm1.weight"
_OPEN_CLIP_MARKER = "transformer.resblocks.0.attn.in_proj_weight"
_OPEN_CLIP_TOP = {
    "class_embedding": "vision_model.embeddings.class_embedding",
    "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "ln_post.weight": "vision_model.post_layernorm.weight",
    "ln_post.bias": "vision_model.post_layernorm.bias",
}
_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.")


class ClipVisionError(CheckpointError):
    """A file (or checkpoint part) that holds no CLIP vision tower we can build."""


def find_vision_prefix(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, str] | None:
    """``(prefix, layout)`` of the first vision tower in a state dict, or None.

    Handles bare towers and towers inside checkpoints (``embedder.model.visual.`` in SD2.1-unCLIP-H,
    ``embedder.transformer.vision_model.`` in unCLIP-L, ``conditioner.embedders.N...``).
    """
    for key in state_dict:
        if key.endswith(_HF_MARKER):
            return key[: -len(_HF_MARKER)], "hf"
        if key.endswith(OPEN_CLIP_PREFIX + _OPEN_CLIP_MARKER):
            return key[: -len(_OPEN_CLIP_MARKER)], "open_clip"
    return None


def to_transformers_layout(state_dict: Mapping[str, torch.Tensor], prefix: str, layout: str) -> dict[str, torch.Tensor]:
    """The tower under ``prefix`` in ``CLIPVisionModelWithProjection`` key names."""
    local = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    if layout == "hf":
        keep = ("vision_model.", "visual_projection.weight")
        return {key: value for key, value in local.items() if key.startswith(keep) and not key.endswith("position_ids")}
    # OpenCLIP: the prefix ends in "visual."; fused q/k/v are split, proj [W, P] becomes a Linear weight.
    result: dict[str, torch.Tensor] = {}
    for key, value in local.items():
        if key in _OPEN_CLIP_TOP:
            result[_OPEN_CLIP_TOP[key]] = value
        elif key == "proj":
            result["visual_projection.weight"] = value.t().contiguous()
        elif (match := _OPEN_CLIP_BLOCK.match(key)) is not None:
            index, rest = match.groups()
            layer = f"vision_model.encoder.layers.{index}."
            if rest in _OPEN_CLIP_BLOCK_MAP:
                result[layer + _OPEN_CLIP_BLOCK_MAP[rest]] = value
            elif rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                suffix = rest.rsplit("_", 1)[1]
                for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                    result[f"{layer}self_attn.{part}.{suffix}"] = chunk
    return result


def vision_config(weights: Mapping[str, torch.Tensor], overrides: Mapping[str, Any] | None = None) -> CLIPVisionConfig:
    """The transformers config of a tower in transformers' names, from its shapes (+ overrides)."""
    overrides = overrides or {}
    try:
        width = int(weights["vision_model.embeddings.class_embedding"].shape[0])
        patch = int(weights["vision_model.embeddings.patch_embedding.weight"].shape[-1])
        positions = int(weights["vision_model.embeddings.position_embedding.weight"].shape[0])
        ffn = int(weights["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0])
        projection = int(weights["visual_projection.weight"].shape[0])
    except KeyError as exc:
        raise ClipVisionError(f"CLIP vision weights lack {exc.args[0]!r}") from exc
    layers = 1 + max(int(m.group(1)) for key in weights if (m := _LAYER.match(key)))
    side = math.isqrt(positions - 1)
    if side * side != positions - 1:
        raise ClipVisionError(f"{positions} position embeddings do not form a square patch grid plus a class token")
    heads = int(overrides.get("heads", 12 if width == 768 else 16))
    if width % heads:
        raise ClipVisionError(f"width {width} is not divisible by {heads} heads")
    hidden_act = str(overrides.get("hidden_act", "quick_gelu" if layers == 24 else "gelu"))
    return CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=ffn,
        projection_dim=projection,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=side * patch,
        patch_size=patch,
        hidden_act=hidden_act,
        layer_norm_eps=1e-5,
        attn_implementation="sdpa",
    )


def build_vision_model(weights: Mapping[str, torch.Tensor], config: CLIPVisionConfig, dtype: torch.dtype) -> CLIPVisionModelWithProjection:
    """A transformers model holding ``weights`` by assignment (built on meta: no random init)."""
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    expected = {key for key in model.state_dict() if not key.endswith("position_ids")}
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise ClipVisionError(
            f"CLIP vision weights do not match a {config.num_hidden_layers}-layer width-{config.hidden_size} tower: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.load_state_dict({key: value.to(dtype) for key, value in weights.items()}, strict=False, assign=True)
    embeddings = model.vision_model.embeddings
    if getattr(embeddings, "position_ids", None) is not None and embeddings.position_ids.is_meta:
        positions = config.image_size // config.patch_size
        embeddings.register_buffer("position_ids", torch.arange(positions * positions + 1)[None], persistent=False)
    leftovers = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise ClipVisionError(f"CLIP vision tensors left unloaded: {leftovers[:3]}")
    return model.eval().requires_grad_(False)


def load_clip_vision_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    manager: ModelManager,
    arch: Mapping[str, Any] | None = None,
    name: str = "",
):
    """The CLIP_VISION value of the first vision tower found in ``state_dict`` (file or checkpoint)."""
    from diffusion.clip_vision.encoder import ClipVisionModel

    found = find_vision_prefix(state_dict)
    if found is None:
        raise ClipVisionError(f"{name or 'the file'} holds no CLIP vision model (no vision_model.* or visual.* tower)")
    weights = to_transformers_layout(state_dict, *found)
    overrides = (arch or {}).get("clip_vision") or {}
    config = vision_config(weights, overrides)
    model = build_vision_model(weights, config, manager.text_encoder_dtype())
    return ClipVisionModel(model, manager, name)


def load_clip_vision(path: str | Path, manager: ModelManager):
    """CLIPVisionLoader: a CLIP vision file in either layout."""
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    return load_clip_vision_state_dict(state_dict, manager, parse_arch_metadata(metadata), path.name)
