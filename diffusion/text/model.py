"""Build transformers CLIP text models from an EncoderArch and fill them with canonical weights.

Models are built on the meta device and receive the checkpoint tensors by assignment, so loading
never runs a random initialisation and never holds two copies of the weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from diffusion.text.arch import BOS_TOKEN, EOS_TOKEN, EncoderArch, TextEncoderError

TextModel = CLIPTextModel | CLIPTextModelWithProjection


def text_config(arch: EncoderArch) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=arch.vocab_size,
        hidden_size=arch.width,
        intermediate_size=arch.ffn,
        projection_dim=arch.projection_dim or arch.width,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        max_position_embeddings=arch.positions,
        hidden_act=arch.hidden_act,
        layer_norm_eps=1e-5,
        bos_token_id=BOS_TOKEN,
        # eos 49407 (not the legacy 2) makes transformers pool at the first EOS, which is right for
        # both pad conventions and stays right when textual-inversion ids exceed the vocabulary.
        eos_token_id=EOS_TOKEN,
        pad_token_id=EOS_TOKEN,
        attn_implementation="sdpa",
    )


def build_text_model(arch: EncoderArch, device: str | torch.device = "meta") -> TextModel:
    """An uninitialised transformers model (with projection when the arch has one)."""
    cls = CLIPTextModelWithProjection if arch.projection_dim is not None else CLIPTextModel
    with torch.device(device):
        model = cls(text_config(arch))
    return model.eval().requires_grad_(False)


def canonical_to_model_keys(model: TextModel) -> dict[str, str]:
    """Canonical name → this transformers version's state-dict key.

    transformers ≥ 5.6 flattened ``CLIPTextModel`` (no ``text_model.`` prefix) while
    ``CLIPTextModelWithProjection`` keeps it; probing the instantiated model covers both.
    """
    return {key.removeprefix("text_model."): key for key in model.state_dict().keys() if not key.endswith("position_ids")}


def load_canonical(arch: EncoderArch, canonical: Mapping[str, torch.Tensor], dtype: torch.dtype) -> TextModel:
    """A ready model on the CPU holding `canonical` (converted to `dtype`; same-dtype tensors are shared)."""
    model = build_text_model(arch, device="meta")
    names = canonical_to_model_keys(model)
    missing = sorted(set(names) - set(canonical))
    unexpected = sorted(set(canonical) - set(names))
    if missing or unexpected:
        raise TextEncoderError(
            f"{arch.name}: state dict does not match a {arch.layers}-layer width-{arch.width} text encoder; "
            f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}"
        )
    state = {key: canonical[name].to(dtype=dtype) for name, key in names.items()}
    shape_errors = [
        f"{key}: {tuple(state[key].shape)} vs {tuple(param.shape)}"
        for key, param in model.state_dict().items()
        if key in state and state[key].shape != param.shape
    ]
    if shape_errors:
        raise TextEncoderError(f"{arch.name}: tensor shapes do not agree: {shape_errors[:3]}")
    model.load_state_dict(state, strict=False, assign=True)
    _materialise_buffers(model, arch)
    return model


def _materialise_buffers(model: TextModel, arch: EncoderArch) -> None:
    """Non-persistent buffers stay on meta after an assign-load; rebuild them on the CPU."""
    for module in model.modules():
        if hasattr(module, "position_ids") and module.position_ids.is_meta:
            module.register_buffer(
                "position_ids", torch.arange(arch.positions, dtype=torch.long)[None], persistent=False
            )
    leftovers = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise TextEncoderError(f"{arch.name}: tensors left unloaded: {leftovers[:3]}")
