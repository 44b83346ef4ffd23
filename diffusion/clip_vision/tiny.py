"""Tiny random CLIP vision towers in both distributed layouts, for tests and tools/.

The weights come from transformers' own initialisation (seeded) so the HF layout is exactly what
``CLIPVisionModelWithProjection.state_dict()`` holds; the OpenCLIP layout is the same tensors in
``visual.*`` names with q/k/v fused and the projection as ``[width, projection]``.
"""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "image_size": 28, "patch_size": 14, "projection_dim": 24}


def tiny_vision_config(hidden_act: str = "gelu", **changes: int) -> CLIPVisionConfig:
    return CLIPVisionConfig(**{**TINY, **changes}, hidden_act=hidden_act, layer_norm_eps=1e-5)


def tiny_hf_state_dict(seed: int = 0, hidden_act: str = "gelu", **changes: int) -> dict[str, torch.Tensor]:
    """A seeded transformers tower (biases and norms randomised too, so no weight is trivial)."""
    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(tiny_vision_config(hidden_act, **changes))
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("position_ids"):
            continue
        if key.endswith(("bias", "layer_norm1.weight", "layer_norm2.weight", "layrnorm.weight", "layernorm.weight")):
            value = value + 0.1 * torch.randn_like(value)
        state[key] = value.detach().clone()
    return state


def hf_to_open_clip(state: dict[str, torch.Tensor], prefix: str = "visual.") -> dict[str, torch.Tensor]:
    """The same tower in OpenCLIP's native names (as in open_clip_pytorch_model.bin, SD2.1-unCLIP-H)."""
    out = {
        f"{prefix}class_embedding": state["vision_model.embeddings.class_embedding"],
        f"{prefix}conv1.weight": state["vision_model.embeddings.patch_embedding.weight"],
        f"{prefix}positional_embedding": state["vision_model.embeddings.position_embedding.weight"],
        f"{prefix}ln_pre.weight": state["vision_model.pre_layrnorm.weight"],
        f"{prefix}ln_pre.bias": state["vision_model.pre_layrnorm.bias"],
        f"{prefix}ln_post.weight": state["vision_model.post_layernorm.weight"],
        f"{prefix}ln_post.bias": state["vision_model.post_layernorm.bias"],
        f"{prefix}proj": state["visual_projection.weight"].t().contiguous(),
    }
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("vision_model.encoder.layers."))
    for i in range(layers):
        src, dst = f"vision_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for hf, oc in names.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{oc}.{kind}"] = state[f"{src}{hf}.{kind}"]
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [state[f"{src}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            )
    return out
