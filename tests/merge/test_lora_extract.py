"""LoRA extraction: SVD factors of weight differences, in kohya's names, as loaders read them."""

from __future__ import annotations

import pytest
import torch

from diffusion.merge.lora_extract import extract_lora, low_rank_factors

GEN = torch.Generator().manual_seed(0)


def _product(up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    return (up.flatten(1).float() @ down.flatten(1).float()).reshape(up.shape[0], *down.shape[1:])


@pytest.mark.parametrize("shape", [(24, 40), (40, 24), (16, 8, 3, 3), (16, 8, 1, 1)])
def test_full_rank_factors_reproduce_the_difference(shape):
    diff = torch.randn(shape, generator=GEN) * 0.01
    up, down = low_rank_factors(diff, rank=4096)
    assert up.shape[:2] == (shape[0], min(shape[0], diff[0].numel()))
    if len(shape) == 4:
        assert up.shape[2:] == (1, 1) and down.shape[1:] == shape[1:]
    torch.testing.assert_close(_product(up, down), diff, rtol=0, atol=1e-6)


def test_a_truncated_rank_is_the_best_approximation_of_that_rank():
    diff = torch.randn(32, 48, generator=GEN)
    singular = torch.linalg.svdvals(diff)
    up, down = low_rank_factors(diff, rank=5, clamp_quantile=None)
    assert up.shape == (32, 5) and down.shape == (5, 48)
    # Eckart–Young: the error of the best rank-5 approximation is the norm of the dropped singular values.
    error = torch.linalg.matrix_norm(diff - up @ down)
    torch.testing.assert_close(error, singular[5:].norm(), rtol=1e-4, atol=0)


def test_a_truncated_rank_clamps_outliers_at_the_quantile():
    diff = torch.randn(32, 48, generator=GEN)
    diff[0, 0] = 500.0
    up, down = low_rank_factors(diff, rank=4, clamp_quantile=0.99)
    raw_up, raw_down = low_rank_factors(diff, rank=4, clamp_quantile=None)
    joint = torch.cat([raw_up.flatten(), raw_down.flatten()])
    high = torch.quantile(joint, 0.99)
    assert up.abs().max() <= high + 1e-6 and down.abs().max() <= high + 1e-6
    assert raw_up.abs().max() > high


def test_kohya_names_for_unet_and_text_layers_and_generic_names_for_the_rest():
    diffs = {
        "diffusion_model.input_blocks.1.1.proj_in.weight": torch.randn(8, 8, generator=GEN),
        "diffusion_model.input_blocks.1.1.proj_in.bias": torch.randn(8, generator=GEN),
        "diffusion_model.out.0.weight": torch.randn(8, generator=GEN),
        "diffusion_model.out.2.weight": torch.randn(4, 8, 3, 3, generator=GEN),
        "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight": torch.randn(8, 8, generator=GEN),
        "clip_l.transformer.text_model.embeddings.token_embedding.weight": torch.randn(10, 8, generator=GEN),
        "clip_g.transformer.text_model.encoder.layers.3.mlp.fc2.weight": torch.randn(8, 16, generator=GEN),
        "clip_g.transformer.text_projection.weight": torch.randn(8, 8, generator=GEN),
    }
    lora = extract_lora(diffs, rank=2)
    assert set(lora) == {
        "lora_unet_input_blocks_1_1_proj_in.lora_up.weight",
        "lora_unet_input_blocks_1_1_proj_in.lora_down.weight",
        "lora_unet_input_blocks_1_1_proj_in.alpha",
        "lora_unet_input_blocks_1_1_proj_in.diff_b",
        "lora_unet_out_0.diff",
        "lora_unet_out_2.lora_up.weight",
        "lora_unet_out_2.lora_down.weight",
        "lora_unet_out_2.alpha",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha",
        "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.lora_up.weight",
        "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.lora_down.weight",
        "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.alpha",
        "lora_te2_text_model_encoder_layers_3_mlp_fc2.lora_up.weight",
        "lora_te2_text_model_encoder_layers_3_mlp_fc2.lora_down.weight",
        "lora_te2_text_model_encoder_layers_3_mlp_fc2.alpha",
        "text_encoders.clip_g.transformer.text_projection.lora_up.weight",
        "text_encoders.clip_g.transformer.text_projection.lora_down.weight",
        "text_encoders.clip_g.transformer.text_projection.alpha",
    }
    assert lora["lora_unet_out_2.alpha"].item() == 2.0  # alpha = rank: scale 1
    assert all(t.dtype == torch.float16 for t in lora.values())
    single = extract_lora({"clip_h.transformer.text_model.encoder.layers.0.mlp.fc1.weight": torch.randn(4, 4)}, 2)
    assert "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha" in single


def test_full_diff_and_bias_options():
    diffs = {"diffusion_model.a.weight": torch.randn(4, 4, generator=GEN), "diffusion_model.a.bias": torch.randn(4),
             "diffusion_model.n.weight": torch.randn(4)}
    full = extract_lora(diffs, rank=2, lora_type="full_diff", bias_diff=False)
    assert set(full) == {"lora_unet_a.diff", "lora_unet_n.diff"}
    torch.testing.assert_close(full["lora_unet_a.diff"], diffs["diffusion_model.a.weight"].half())
    standard = extract_lora(diffs, rank=2, bias_diff=False)
    assert set(standard) == {"lora_unet_a.lora_up.weight", "lora_unet_a.lora_down.weight", "lora_unet_a.alpha"}
    with pytest.raises(ValueError, match="lora_type"):
        extract_lora(diffs, rank=2, lora_type="lokr")


def test_factors_too_large_for_torch_quantile_are_clamped_at_a_sampled_quantile(monkeypatch):
    from diffusion.merge import lora_extract

    diff = torch.randn(64, 96, generator=GEN)
    exact_up, exact_down = low_rank_factors(diff, rank=8)
    monkeypatch.setattr(lora_extract, "_QUANTILE_LIMIT", 500)  # the joint values number 64·8 + 8·96 = 1280
    up, down = low_rank_factors(diff, rank=8)
    raw_up, _ = low_rank_factors(diff, rank=8, clamp_quantile=None)
    high = max(up.abs().max(), down.abs().max())
    assert high < raw_up.abs().max()  # still clamped
    torch.testing.assert_close(high, max(exact_up.abs().max(), exact_down.abs().max()), rtol=0.2, atol=0)
