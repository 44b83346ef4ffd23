"""Key conversion from checkpoint layouts (HF CLIP, OpenCLIP native) to one canonical HF layout.

The canonical layout is transformers' ``CLIPTextModel`` naming without the ``text_model.`` prefix
(``embeddings.token_embedding.weight``, ``encoder.layers.N.self_attn.q_proj.weight``,
``final_layer_norm.weight``) plus ``text_projection.weight`` ([P, W], applied as a Linear). The
loader maps canonical names onto whatever prefix the installed transformers version uses.

State dicts are read lazily: only keys under the requested prefix are touched, one tensor at a time,
so a memory-mapped safetensors mapping is never copied as a whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import torch

from diffusion.text.arch import EncoderArch, TextEncoderError

log = logging.getLogger(__name__)

# Checkpoint buffers with no parameter counterpart (transformers rebuilds position ids itself).
_DROPPED_HF = {"embeddings.position_ids", "logit_scale"}
_DROPPED_OPEN_CLIP = {"logit_scale", "attn_mask"}

_OPEN_CLIP_BLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")
_OPEN_CLIP_BLOCK_MAP = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}
_OPEN_CLIP_TOP_MAP = {
    "token_embedding.weight": "embeddings.token_embedding.weight",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_final.weight": "final_layer_norm.weight",
    "ln_final.bias": "final_layer_norm.bias",
}


def keys_under(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, str]:
    """Local name → full key for every key that starts with `prefix`."""
    return {key[len(prefix):]: key for key in state_dict.keys() if key.startswith(prefix)}


def hf_to_canonical(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Canonical tensors from an HF-layout CLIP text model under `prefix`.

    Accepts ``text_model.``-prefixed names, the flattened transformers ≥ 5.6 names and very old SD1
    files that lack ``text_model.``.
    """
    result: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for local, full in keys_under(state_dict, prefix).items():
        name = local.removeprefix("text_model.")
        if name in _DROPPED_HF:
            continue
        if not (name.startswith(("embeddings.", "encoder.layers.", "final_layer_norm.")) or name == "text_projection.weight"):
            ignored.append(full)
            continue
        result[name] = state_dict[full]
    if ignored:
        log.warning("ignoring %d unexpected text-encoder keys, e.g. %s", len(ignored), ignored[:3])
    return result


def open_clip_to_canonical(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Canonical tensors from an OpenCLIP text tower in native names under `prefix`.

    ``attn.in_proj_weight`` [3W, W] is split row-wise into q, k, v (row slices are contiguous views,
    no copy); ``text_projection`` [W, P] is used as ``x @ P`` by OpenCLIP, i.e. a Linear with weight Pᵀ.
    """
    result: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for local, full in keys_under(state_dict, prefix).items():
        if local in _DROPPED_OPEN_CLIP:
            continue
        if local in _OPEN_CLIP_TOP_MAP:
            result[_OPEN_CLIP_TOP_MAP[local]] = state_dict[full]
            continue
        if local == "text_projection":
            result["text_projection.weight"] = state_dict[full].t().contiguous()
            continue
        if local == "text_projection.weight":  # some converters store it already as a Linear weight [P, W]
            result["text_projection.weight"] = state_dict[full]
            continue
        match = _OPEN_CLIP_BLOCK.match(local)
        if match is None:
            ignored.append(full)
            continue
        index, rest = match.groups()
        layer = f"encoder.layers.{index}."
        if rest in _OPEN_CLIP_BLOCK_MAP:
            result[layer + _OPEN_CLIP_BLOCK_MAP[rest]] = state_dict[full]
        elif rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            fused = state_dict[full]
            if fused.shape[0] % 3:
                raise TextEncoderError(f"{full}: fused q/k/v first dimension {fused.shape[0]} is not a multiple of 3")
            suffix = "weight" if rest.endswith("weight") else "bias"
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), fused.chunk(3, dim=0), strict=True):
                result[f"{layer}self_attn.{part}.{suffix}"] = chunk
        else:
            ignored.append(full)
    if ignored:
        log.warning("ignoring %d unexpected text-encoder keys, e.g. %s", len(ignored), ignored[:3])
    return result


def canonical_key_shapes(arch: EncoderArch) -> dict[str, tuple[int, ...]]:
    """Every canonical parameter name and shape of a text model with this architecture."""
    w, f = arch.width, arch.ffn
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.token_embedding.weight": (arch.vocab_size, w),
        "embeddings.position_embedding.weight": (arch.positions, w),
    }
    for i in range(arch.layers):
        p = f"encoder.layers.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            shapes[f"{p}{norm}.weight"] = (w,)
            shapes[f"{p}{norm}.bias"] = (w,)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}self_attn.{proj}.weight"] = (w, w)
            shapes[f"{p}self_attn.{proj}.bias"] = (w,)
        shapes[f"{p}mlp.fc1.weight"] = (f, w)
        shapes[f"{p}mlp.fc1.bias"] = (f,)
        shapes[f"{p}mlp.fc2.weight"] = (w, f)
        shapes[f"{p}mlp.fc2.bias"] = (w,)
    shapes["final_layer_norm.weight"] = (w,)
    shapes["final_layer_norm.bias"] = (w,)
    if arch.projection_dim is not None:
        shapes["text_projection.weight"] = (arch.projection_dim, w)
    return shapes


def open_clip_key_shapes(arch: EncoderArch, *, with_logit_scale: bool = True) -> dict[str, tuple[int, ...]]:
    """Native OpenCLIP text-tower names and shapes, as stored in SD2/SDXL checkpoints."""
    w, f = arch.width, arch.ffn
    shapes: dict[str, tuple[int, ...]] = {
        "token_embedding.weight": (arch.vocab_size, w),
        "positional_embedding": (arch.positions, w),
    }
    for i in range(arch.layers):
        p = f"transformer.resblocks.{i}."
        for norm in ("ln_1", "ln_2"):
            shapes[f"{p}{norm}.weight"] = (w,)
            shapes[f"{p}{norm}.bias"] = (w,)
        shapes[f"{p}attn.in_proj_weight"] = (3 * w, w)
        shapes[f"{p}attn.in_proj_bias"] = (3 * w,)
        shapes[f"{p}attn.out_proj.weight"] = (w, w)
        shapes[f"{p}attn.out_proj.bias"] = (w,)
        shapes[f"{p}mlp.c_fc.weight"] = (f, w)
        shapes[f"{p}mlp.c_fc.bias"] = (f,)
        shapes[f"{p}mlp.c_proj.weight"] = (w, f)
        shapes[f"{p}mlp.c_proj.bias"] = (w,)
    shapes["ln_final.weight"] = (w,)
    shapes["ln_final.bias"] = (w,)
    if arch.projection_dim is not None:
        shapes["text_projection"] = (w, arch.projection_dim)
    if with_logit_scale:
        shapes["logit_scale"] = ()
    return shapes


def infer_arch(name: str, canonical: Mapping[str, torch.Tensor], overrides: Mapping[str, object] | None = None) -> EncoderArch:
    """Read width, depth, FFN, vocabulary and projection from shapes; heads/activation from defaults."""
    from diffusion.text.arch import DEFAULT_ACT

    try:
        vocab, width = canonical["embeddings.token_embedding.weight"].shape
        positions = canonical["embeddings.position_embedding.weight"].shape[0]
        ffn = canonical["encoder.layers.0.mlp.fc1.weight"].shape[0]
    except KeyError as exc:
        raise TextEncoderError(f"{name}: text encoder is missing {exc.args[0]!r}") from None
    layers = 1 + max(int(k.split(".")[2]) for k in canonical if k.startswith("encoder.layers."))
    projection = canonical.get("text_projection.weight")
    overrides = overrides or {}
    heads = overrides.get("heads")
    if heads is None:
        if width % 64:
            raise TextEncoderError(
                f"{name}: width {width} is not a multiple of 64, so the head count is unknown; "
                'give it as {"text": {"' + name + '": {"heads": N}}} in the "latentgraph.arch" metadata'
            )
        heads = width // 64
    return EncoderArch(
        name=name,
        width=int(width),
        layers=layers,
        heads=int(heads),  # type: ignore[arg-type]
        ffn=int(ffn),
        vocab_size=int(vocab),
        positions=int(positions),
        projection_dim=None if projection is None else int(projection.shape[0]),
        hidden_act=str(overrides.get("hidden_act", DEFAULT_ACT[name])),
    )
