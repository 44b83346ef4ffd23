"""Key maps: trainers' module names reach the right model keys."""

import pytest
import torch

from diffusion.checkpoint.diffusers_unet import diffusers_unet_to_ldm
from diffusion.lora.keys import clip_key_map, ldm_to_diffusers_module, unet_key_map
from diffusion.lora.loader import load_lora
from diffusion.lora.tiny import tiny_lora_target


@pytest.mark.parametrize("variant", ["sd1", "sd2", "sdxl", "sdxl-refiner"])
def test_diffusers_names_round_trip_through_the_checkpoint_converter(variant):
    target = tiny_lora_target(variant)
    names = {}
    for key in target.unet_shapes:
        module, _, kind = key.rpartition(".")
        diffusers = ldm_to_diffusers_module(module, target.unet_config)
        if diffusers is not None:
            names[f"{diffusers}.{kind}"] = key
    renamed = diffusers_unet_to_ldm({name: torch.zeros(1) for name in names})
    assert sorted(renamed) == sorted(names.values())
    assert len(names) == len(target.unet_shapes), "every UNet weight has a diffusers name"


def test_unet_names_of_every_convention_map_to_the_same_key():
    target = tiny_lora_target("sd1")
    key_map = unet_key_map(["diffusion_model." + k for k in target.unet_shapes], target.unet_config)
    expected = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    for name in (
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",  # kohya SD1
        "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q",  # kohya SDXL-style
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",  # diffusers
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",  # PEFT on a UNet
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q",  # attention processors
        "lycoris_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",  # SimpleTuner
        "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q",  # generic
    ):
        assert key_map[name] == expected, name
    assert key_map["lora_unet_mid_block_attentions_0_proj_in"] == "diffusion_model.middle_block.1.proj_in.weight"
    assert key_map["lora_unet_up_blocks_1_resnets_2_conv1"] == "diffusion_model.output_blocks.5.0.in_layers.2.weight"


def test_text_encoder_prefixes_follow_the_encoders_present():
    layer = "text_model.encoder.layers.0.self_attn.q_proj.weight"
    single = clip_key_map([f"clip_l.transformer.{layer}"])
    assert single["lora_te_text_model_encoder_layers_0_self_attn_q_proj"] == f"clip_l.transformer.{layer}"
    assert single["text_encoder.text_model.encoder.layers.0.self_attn.q_proj"] == f"clip_l.transformer.{layer}"
    dual = clip_key_map([f"clip_l.transformer.{layer}", f"clip_g.transformer.{layer}", "clip_g.transformer.text_projection.weight"])
    assert dual["lora_te1_text_model_encoder_layers_0_self_attn_q_proj"].startswith("clip_l.")
    assert dual["lora_te2_text_model_encoder_layers_0_self_attn_q_proj"].startswith("clip_g.")
    assert dual["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj"].startswith("clip_g.")
    assert dual["lora_te2_text_projection"] == "clip_g.transformer.text_projection.weight"
    refiner = clip_key_map([f"clip_g.transformer.{layer}"])
    assert refiner["lora_te_text_model_encoder_layers_0_self_attn_q_proj"].startswith("clip_g.")


def test_missing_alpha_means_scale_one_and_alpha_scales_by_rank():
    up, down = torch.randn(6, 2), torch.randn(2, 5)
    weight = torch.zeros(6, 5)
    plain, _ = load_lora({"m.lora_B.weight": up, "m.lora_A.weight": down}, {"m": "w"})
    torch.testing.assert_close(plain["w"].calculate_weight(weight.clone(), "w", 1.0, 1.0, None, None), up @ down)
    halved, _ = load_lora({"m.lora_up.weight": up, "m.lora_down.weight": down, "m.alpha": torch.tensor(1.0)}, {"m": "w"})
    torch.testing.assert_close(halved["w"].calculate_weight(weight.clone(), "w", 2.0, 1.0, None, None), up @ down)


def test_whole_tensor_forms_target_weight_and_bias():
    state = {"m.diff": torch.ones(3, 2), "m.diff_b": torch.ones(3), "n.set_weight": torch.full((3, 2), 7.0)}
    patches, unused = load_lora(state, {"m": "a.weight", "n": "b.weight"})
    assert unused == [] and set(patches) == {"a.weight", "a.bias", "b.weight"}
    torch.testing.assert_close(patches["b.weight"].calculate_weight(torch.zeros(3, 2), "b", 1.0, 1.0, None, None), torch.full((3, 2), 7.0))


def test_family_is_told_by_the_cross_attention_width_and_the_key_names():
    from diffusion.lora.loader import LoRAError, fit_patches, guess_family

    down = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"
    assert guess_family({down: torch.zeros(4, 768)}) == "sd1"
    assert guess_family({down: torch.zeros(4, 1024)}) == "sd2"
    assert guess_family({"lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(1.0)}) == "sdxl"
    assert guess_family({"lora_unet_input_blocks_4_1_proj_in.alpha": torch.tensor(1.0)}) == "sdxl"
    state = {down: torch.zeros(4, 768), "x.lora_up.weight": torch.zeros(320, 4)}
    with pytest.raises(LoRAError, match="SDXL model: it looks like an SD1.x LoRA"):
        fit_patches("style", state, {}, {}, list(state), "sdxl")
