"""Our converted encoders equal the reference implementations built from the same random weights.

OpenCLIP towers (SD2 ViT-H, SDXL bigG) are compared with open_clip's own TextTransformer; CLIP-L with
transformers' CLIPTextModel loaded the diffusers way (convert_ldm_clip_checkpoint). fp32, ≤ 1e-4.
"""

import pytest
import torch
from torch import nn

from diffusion.text.loader import load_clip
from diffusion.text.tiny import TINY, tiny_text_arch_overrides, tiny_text_encoder_state_dict
from tests.support.reference_imports import import_open_clip

TOL = 1e-4
PROMPTS = ["a photo of an astronaut riding a horse on mars", "", "(masterpiece:1.2), best quality"]


def _open_clip_tower(state, prefix, arch):
    open_clip = import_open_clip()
    tower = open_clip.transformer.TextTransformer(
        context_length=77, vocab_size=49408, width=arch.width, heads=arch.heads, layers=arch.layers,
        output_dim=arch.projection_dim, act_layer=nn.GELU,
    )
    native = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and not k.endswith("logit_scale")}
    tower.load_state_dict(native, strict=True)
    return tower.eval()


def _ids(clip, key, prompt):
    return torch.tensor([[t for t, _ in chunk] for chunk in clip.tokenize(prompt)[key]])


def _reference_penultimate(tower, ids, layer_norm):
    with torch.no_grad():
        out = tower.forward_intermediates(ids, indices=[tower.transformer.layers - 2], output_fmt="NLC")
    hidden = out["text_intermediates"][0]
    return (tower.ln_final(hidden) if layer_norm else hidden), out["text_features"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_sd2_vit_h_penultimate_with_ln_final_matches_open_clip(prompt):
    state = tiny_text_encoder_state_dict("sd2", seed=11)
    clip = load_clip(state, "sd2", tiny_text_arch_overrides("sd2"))
    tower = _open_clip_tower(state, "cond_stage_model.model.", TINY["clip_h"])
    ids = _ids(clip, "h", prompt.replace("(", "").replace(":1.2)", ""))
    expected, _ = _reference_penultimate(tower, ids, layer_norm=True)
    tokens = {"h": [[(int(t), 1.0) for t in ids[0]]]}
    got = clip.encode_from_tokens(tokens)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.parametrize("family,prefix", [("sdxl", "conditioner.embedders.1.model."), ("sdxl-refiner", "conditioner.embedders.0.model.")])
def test_bigg_penultimate_and_pooled_projection_match_open_clip(family, prefix):
    state = tiny_text_encoder_state_dict(family, seed=5)
    clip = load_clip(state, family, tiny_text_arch_overrides(family))
    tower = _open_clip_tower(state, prefix, TINY["clip_g"])
    text = "a cinematic photo of a red fox in the snow"
    ids = _ids(clip, "g", text)
    expected, expected_pooled = _reference_penultimate(tower, ids, layer_norm=False)
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    g_part = cond[..., -TINY["clip_g"].width:]
    assert (g_part - expected).abs().max().item() <= TOL
    assert (pooled - expected_pooled).abs().max().item() <= TOL


def _diffusers_clip_l(state, prefix):
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    arch = TINY["clip_l"]
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=arch.width, intermediate_size=arch.ffn, num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads, max_position_embeddings=77, hidden_act="quick_gelu",
    )
    model = CLIPTextModel(config).eval()
    converted = convert_ldm_clip_checkpoint(state, remove_prefix=prefix)
    if not hasattr(model, "text_model"):  # transformers ≥ 5.6 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    converted = {k: v for k, v in converted.items() if k in model.state_dict()}
    model.load_state_dict(converted, strict=True)
    return model


def test_sd1_clip_l_matches_transformers_loaded_like_diffusers():
    state = tiny_text_encoder_state_dict("sd1", seed=2)
    clip = load_clip(state, "sd1", tiny_text_arch_overrides("sd1"))
    reference = _diffusers_clip_l(state, "cond_stage_model.transformer.")
    text = "a watercolor painting of a lighthouse"
    ids = _ids(clip, "l", text)
    with torch.no_grad():
        out = reference(input_ids=ids, output_hidden_states=True)
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    assert (cond - out.last_hidden_state).abs().max().item() <= TOL
    assert (pooled - out.pooler_output).abs().max().item() <= TOL
    skip = clip.clone()
    skip.set_last_layer(-2)
    expected_skip = reference.final_layer_norm(out.hidden_states[-2])
    assert (skip.encode_from_tokens(skip.tokenize(text)) - expected_skip).abs().max().item() <= TOL


def test_sdxl_context_is_clip_l_penultimate_without_ln_then_bigg():
    state = tiny_text_encoder_state_dict("sdxl", seed=8)
    clip = load_clip(state, "sdxl", tiny_text_arch_overrides("sdxl"))
    reference_l = _diffusers_clip_l(state, "conditioner.embedders.0.transformer.")
    text = "isometric city at night"
    ids = _ids(clip, "l", text)
    with torch.no_grad():
        expected_l = reference_l(input_ids=ids, output_hidden_states=True).hidden_states[-2]
    cond = clip.encode_from_tokens(clip.tokenize(text))
    assert cond.shape == (1, 77, 32 + 64)
    assert (cond[..., :32] - expected_l).abs().max().item() <= TOL


@pytest.mark.parametrize("family,prefix", [("sdxl", "conditioner.embedders.1.model."), ("sdxl-refiner", "conditioner.embedders.0.model.")])
def test_bigg_key_conversion_equals_diffusers(family, prefix):
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    from diffusion.text.convert import open_clip_to_canonical
    from diffusion.text.model import build_text_model

    state = tiny_text_encoder_state_dict(family, seed=1)
    reference = convert_open_clip_checkpoint(build_text_model(TINY["clip_g"]), state, prefix=prefix)
    reference = {k.removeprefix("text_model."): v for k, v in reference.items()}
    ours = open_clip_to_canonical(state, prefix)
    assert set(ours) == set(reference)
    assert all(torch.equal(ours[k], reference[k]) for k in ours)
