"""T2I style adapter: its residual blocks equal transformers' CLIPEncoderLayer (quick_gelu) on the
same weights; StyleModelApply appends the style tokens (scaled by strength for multiply)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTextConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from diffusion.clip_vision.encoder import ClipVisionOutput
from diffusion.memory import ModelManager
from diffusion.style_model import apply_style, load_style_model
from tools.make_tiny_style_model import TINY_STYLE, tiny_style_state_dict, write_tiny_style_model


def reference_style_tokens(state: dict, hidden: torch.Tensor) -> torch.Tensor:
    """The adapter's forward written with transformers' CLIP layer for the attention blocks."""
    w, heads = TINY_STYLE["width"], TINY_STYLE["heads"]
    config = CLIPTextConfig(hidden_size=w, intermediate_size=4 * w, num_attention_heads=heads,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5, attn_implementation="eager")
    ln = torch.nn.functional.layer_norm
    x = torch.cat([hidden, state["style_embedding"].expand(hidden.shape[0], -1, -1)], dim=1)
    x = ln(x, (w,), state["ln_pre.weight"], state["ln_pre.bias"])
    for i in range(TINY_STYLE["layers"]):
        p = f"transformer_layes.{i}."
        layer = CLIPEncoderLayer(config).eval()
        q, k, v = state[p + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = state[p + "attn.in_proj_bias"].chunk(3)
        layer.load_state_dict({
            "self_attn.q_proj.weight": q, "self_attn.k_proj.weight": k, "self_attn.v_proj.weight": v,
            "self_attn.q_proj.bias": qb, "self_attn.k_proj.bias": kb, "self_attn.v_proj.bias": vb,
            "self_attn.out_proj.weight": state[p + "attn.out_proj.weight"],
            "self_attn.out_proj.bias": state[p + "attn.out_proj.bias"],
            "layer_norm1.weight": state[p + "ln_1.weight"], "layer_norm1.bias": state[p + "ln_1.bias"],
            "layer_norm2.weight": state[p + "ln_2.weight"], "layer_norm2.bias": state[p + "ln_2.bias"],
            "mlp.fc1.weight": state[p + "mlp.c_fc.weight"], "mlp.fc1.bias": state[p + "mlp.c_fc.bias"],
            "mlp.fc2.weight": state[p + "mlp.c_proj.weight"], "mlp.fc2.bias": state[p + "mlp.c_proj.bias"],
        })
        with torch.no_grad():
            out = layer(x, None)
        x = out[0] if isinstance(out, tuple) else out
    tokens = x[:, -TINY_STYLE["tokens"]:]
    return ln(tokens, (w,), state["ln_post.weight"], state["ln_post.bias"]) @ state["proj"]


@pytest.fixture
def style(tmp_path):
    return load_style_model(write_tiny_style_model(tmp_path / "style.safetensors", seed=2), ModelManager("cpu"))


def vision_output(hidden: torch.Tensor) -> ClipVisionOutput:
    return ClipVisionOutput(last_hidden_state=hidden, penultimate_hidden_states=hidden,
                            image_embeds=torch.zeros(hidden.shape[0], 24))


def test_style_tokens_equal_the_transformers_clip_layers(style):
    hidden = torch.randn(2, 5, TINY_STYLE["width"], generator=torch.Generator().manual_seed(0))
    ours = style.get_cond(vision_output(hidden))
    theirs = reference_style_tokens(tiny_style_state_dict(seed=2), hidden)
    assert ours.shape == (2, TINY_STYLE["tokens"], TINY_STYLE["context"])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_apply_appends_tokens_scaled_by_strength(style):
    hidden = torch.randn(1, 5, TINY_STYLE["width"])
    tokens = style.get_cond(vision_output(hidden))
    text = torch.randn(1, 77, TINY_STYLE["context"])
    conditioning = [[text, {"pooled_output": None}]]
    out = apply_style(conditioning, tokens, 0.5, "multiply")
    assert out[0][0].shape == (1, 77 + TINY_STYLE["tokens"], TINY_STYLE["context"])
    assert torch.equal(out[0][0][:, :77], text)
    assert torch.allclose(out[0][0][:, 77:], 0.5 * tokens)
    assert conditioning[0][0] is text  # the input value is not changed
    assert torch.equal(apply_style(conditioning, tokens, 1.0, "attn_bias")[0][0][:, 77:], tokens[0][None])
    with pytest.raises(ValueError, match="attention masks"):
        apply_style(conditioning, tokens, 0.5, "attn_bias")
