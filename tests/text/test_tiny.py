"""Tiny text-encoder weights keep the real checkpoint key layout and are deterministic."""

import pytest
import torch

from diffusion.text.tiny import tiny_text_arch_overrides, tiny_text_encoder_state_dict

EXPECTED = {
    # family: (key count, float parameter count incl. logit_scale, a key that must exist)
    "sd1": (197, 1_736_032, "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias"),
    "sd2": (294, 1_888_480 + 32 * 32 + 1, "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight"),
    "sdxl": (197 + 390, 1_736_032 + 4_770_752 + 1, "conditioner.embedders.1.model.text_projection"),
    "sdxl-refiner": (390, 4_770_752 + 1, "conditioner.embedders.0.model.transformer.resblocks.31.mlp.c_proj.bias"),
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_tiny_state_dict_has_checkpoint_layout(family):
    keys, params, probe = EXPECTED[family]
    state = tiny_text_encoder_state_dict(family, seed=0)
    assert len(state) == keys
    assert sum(t.numel() for t in state.values() if t.is_floating_point()) == params
    assert probe in state


def test_tiny_state_dict_is_deterministic_per_seed():
    a = tiny_text_encoder_state_dict("sdxl", seed=3)
    b = tiny_text_encoder_state_dict("sdxl", seed=3)
    c = tiny_text_encoder_state_dict("sdxl", seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conditioner.embedders.1.model.ln_final.weight"], c["conditioner.embedders.1.model.ln_final.weight"])


def test_tiny_state_dict_dtype():
    state = tiny_text_encoder_state_dict("sd1", seed=0, dtype=torch.float16)
    assert state["cond_stage_model.transformer.text_model.final_layer_norm.weight"].dtype == torch.float16
    assert state["cond_stage_model.transformer.text_model.embeddings.position_ids"].dtype == torch.int64


def test_tiny_arch_overrides_name_every_encoder():
    assert tiny_text_arch_overrides("sdxl") == {"text": {"clip_l": {"heads": 4}, "clip_g": {"heads": 4}}}
    assert tiny_text_arch_overrides("sd2") == {"text": {"clip_h": {"heads": 4}}}
