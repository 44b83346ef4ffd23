"""load_clip builds the family's encoders from checkpoint keys; errors are clear."""

import pytest
import torch

from diffusion.text.arch import TextEncoderError
from diffusion.text.loader import load_clip, load_clip_from_state_dicts
from diffusion.text.tiny import tiny_text_arch_overrides, tiny_text_encoder_state_dict
from engine.sizing import value_nbytes

WIDTH = {"sd1": 32, "sd2": 32, "sdxl": 96, "sdxl-refiner": 64}
POOLED = {"sd1": 32, "sd2": 32, "sdxl": 64, "sdxl-refiner": 64}


@pytest.mark.parametrize("family", sorted(WIDTH))
def test_load_clip_encodes_every_family(family):
    clip = load_clip(tiny_text_encoder_state_dict(family, 0), family, tiny_text_arch_overrides(family))
    cond, pooled = clip.encode_from_tokens(clip.tokenize("a photo of a cat"), return_pooled=True)
    assert cond.shape == (1, 77, WIDTH[family])
    assert pooled.shape == (1, POOLED[family])
    assert cond.dtype == torch.float32 and torch.isfinite(cond).all()


def test_load_clip_accepts_json_metadata_string():
    clip = load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", '{"text": {"clip_l": {"heads": 4}}}')
    assert clip.encoders["l"].arch.heads == 4


def test_tiny_widths_without_head_override_are_refused():
    with pytest.raises(TextEncoderError, match="latentgraph.arch"):
        load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1")


def test_unknown_override_key_is_refused():
    with pytest.raises(TextEncoderError, match="unknown keys"):
        load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", {"text": {"clip_l": {"head": 4}}})


def test_missing_text_encoder_is_reported():
    with pytest.raises(TextEncoderError, match="no clip_g"):
        load_clip(tiny_text_encoder_state_dict("sd1", 0), "sdxl-refiner", tiny_text_arch_overrides("sdxl-refiner"))


def test_truncated_encoder_is_reported():
    state = tiny_text_encoder_state_dict("sd2", 0)
    del state["cond_stage_model.model.transformer.resblocks.5.mlp.c_fc.bias"]
    with pytest.raises(TextEncoderError, match="missing"):
        load_clip(state, "sd2", tiny_text_arch_overrides("sd2"))


def test_old_sd1_layout_without_text_model_prefix_loads():
    state = tiny_text_encoder_state_dict("sd1", 0)
    old = {k.replace("transformer.text_model.", "transformer."): v for k, v in state.items()}
    reference = load_clip(state, "sd1", tiny_text_arch_overrides("sd1"))
    clip = load_clip(old, "sd1", tiny_text_arch_overrides("sd1"))
    tokens = clip.tokenize("same weights")
    assert torch.equal(clip.encode_from_tokens(tokens), reference.encode_from_tokens(tokens))


def test_same_dtype_weights_are_shared_not_copied():
    state = tiny_text_encoder_state_dict("sd1", 0)
    clip = load_clip(state, "sd1", tiny_text_arch_overrides("sd1"))
    weight = clip.encoders["l"].text_model.final_layer_norm.weight
    assert weight.data_ptr() == state["cond_stage_model.transformer.text_model.final_layer_norm.weight"].data_ptr()


def test_bf16_load_on_request():
    clip = load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", tiny_text_arch_overrides("sd1"), dtype=torch.bfloat16)
    assert clip.encoders["l"].text_model.final_layer_norm.weight.dtype == torch.bfloat16
    assert clip.encode(" a cat").dtype == torch.float32


def _strip(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_separate_files_make_the_right_family():
    sdxl = tiny_text_encoder_state_dict("sdxl", 0)
    clip_l = _strip(sdxl, "conditioner.embedders.0.transformer.")  # HF layout: text_model.*
    clip_g = _strip(sdxl, "conditioner.embedders.1.model.")  # OpenCLIP native layout
    over = tiny_text_arch_overrides("sdxl")
    dual = load_clip_from_state_dicts([clip_g, clip_l], [over, over])
    assert dual.family == "sdxl"
    full = load_clip(sdxl, "sdxl", over)
    tokens = full.tokenize("a red fox")
    assert torch.allclose(dual.encode_from_tokens(tokens), full.encode_from_tokens(tokens))
    assert load_clip_from_state_dicts([clip_l], [over]).family == "sd1"
    assert load_clip_from_state_dicts([clip_g], [over]).family == "sdxl-refiner"
    with pytest.raises(TextEncoderError, match="not sd2"):
        load_clip_from_state_dicts([clip_l], [over], family="sd2")
    with pytest.raises(TextEncoderError, match="twice|once"):
        load_clip_from_state_dicts([clip_l, clip_l], [over, over])


def test_flattened_hf_file_loads():
    sd1 = tiny_text_encoder_state_dict("sd1", 0)
    flat = _strip(sd1, "cond_stage_model.transformer.text_model.")
    clip = load_clip_from_state_dicts([flat], [tiny_text_arch_overrides("sd1")])
    assert clip.family == "sd1"


def test_model_manager_places_and_accounts_the_encoders():
    from diffusion.memory import ModelManager

    manager = ModelManager(device="cpu")
    clip = load_clip(tiny_text_encoder_state_dict("sdxl", 0), "sdxl", tiny_text_arch_overrides("sdxl"), manager=manager)
    clip.encode("a cat")
    names = {info.name for info in manager.loaded_models()}
    assert {"text encoder clip_l", "text encoder clip_g"} <= names
    assert clip.cache_size_bytes() == sum(info.size_bytes for info in manager.loaded_models() if info.name.startswith("text encoder"))
    skipped = clip.clone()
    skipped.set_last_layer(-2)  # CLIPSetLastLayer: a clone sharing the encoders, counted once
    assert value_nbytes([clip, skipped]) < clip.cache_size_bytes() + 200


def test_scheduled_encode_returns_conditioning():
    clip = load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", tiny_text_arch_overrides("sd1"))
    [[cond, options]] = clip.encode_from_tokens_scheduled(clip.tokenize("a cat"), add_dict={"x": 1})
    assert cond.shape == (1, 77, 32) and options["x"] == 1 and options["pooled_output"].shape == (1, 32)


def test_clip_skip_deeper_than_the_encoder_means_last_layer():
    clip = load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", tiny_text_arch_overrides("sd1"))
    deep = clip.clone()
    deep.set_last_layer(-24)
    tokens = clip.tokenize("a cat")
    assert torch.equal(deep.encode_from_tokens(tokens), clip.encode_from_tokens(tokens))
    with pytest.raises(ValueError):
        deep.set_last_layer(0)


def test_text_stack_never_imports_open_clip_or_torchvision():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from diffusion.text.loader import load_clip\n"
        "from diffusion.text.tiny import tiny_text_arch_overrides, tiny_text_encoder_state_dict\n"
        "clip = load_clip(tiny_text_encoder_state_dict('sdxl', 0), 'sdxl', tiny_text_arch_overrides('sdxl'))\n"
        "clip.encode('a cat')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('open_clip', 'torchvision', 'engine', 'nodes')]\n"
        "assert not bad, bad\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_malformed_tokens_are_refused_clearly():
    clip = load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", tiny_text_arch_overrides("sd1"))
    with pytest.raises(ValueError, match="expected 77"):
        clip.encode_from_tokens({"l": [[(49406, 1.0), (49407, 1.0)]]})
    with pytest.raises(ValueError, match="outside the vocabulary"):
        clip.encode_from_tokens({"l": [[(60000, 1.0)] * 77]})
    with pytest.raises(ValueError, match="lack"):
        clip.encode_from_tokens({"g": clip.tokenize("x")["l"]})


def test_conditioning_is_an_ordinary_tensor():
    clip = load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", tiny_text_arch_overrides("sd1"))
    cond = clip.encode("a cat")
    assert not cond.is_inference() and not cond.requires_grad
    cond.mul_(2)  # consumers may modify their own copies in place


def test_projection_stored_as_linear_weight_is_accepted():
    state = tiny_text_encoder_state_dict("sdxl-refiner", 0)
    key = "conditioner.embedders.0.model.text_projection"
    linear = dict(state)
    linear[key + ".weight"] = linear.pop(key).t().contiguous()
    over = tiny_text_arch_overrides("sdxl-refiner")
    a, b = load_clip(state, "sdxl-refiner", over), load_clip(linear, "sdxl-refiner", over)
    tokens = a.tokenize("a cat")
    assert torch.equal(a.encode_from_tokens(tokens, return_pooled=True)[1], b.encode_from_tokens(tokens, return_pooled=True)[1])


def test_transformers_layout_file_keeps_its_projection():
    """diffusers' text_encoder_2 / CLIPTextModelWithProjection: text_model.* plus a root text_projection."""
    from diffusion.text.convert import open_clip_to_canonical

    state = tiny_text_encoder_state_dict("sdxl-refiner", 0)
    canonical = open_clip_to_canonical(state, "conditioner.embedders.0.model.")
    hf_file = {("" if k == "text_projection.weight" else "text_model.") + k: v for k, v in canonical.items()}
    over = tiny_text_arch_overrides("sdxl-refiner")
    separate = load_clip_from_state_dicts([hf_file], [over])
    reference = load_clip(state, "sdxl-refiner", over)
    assert separate.encoders["g"].arch.projection_dim == 64
    tokens = reference.tokenize("a cat")
    assert torch.allclose(separate.encode_from_tokens(tokens, return_pooled=True)[1], reference.encode_from_tokens(tokens, return_pooled=True)[1])


def test_diffusers_23_layer_vit_h_uses_its_last_layer_as_sd2_penultimate():
    state = tiny_text_encoder_state_dict("sd2", 0)
    over = tiny_text_arch_overrides("sd2")
    full = load_clip(state, "sd2", over)
    cut = {k: v for k, v in state.items() if ".resblocks.23." not in k}
    cut_file = {k.removeprefix("cond_stage_model.model."): v for k, v in cut.items()}
    width_override = {"text": {"clip_h": {"heads": 4}}}
    short = load_clip_from_state_dicts([cut_file], [width_override])
    assert short.family == "sd2" and short.encoders["h"].arch.layers == 23
    tokens = full.tokenize("a cat")
    assert torch.allclose(short.encode_from_tokens(tokens), full.encode_from_tokens(tokens), atol=1e-6)


@pytest.mark.parametrize("family,pads", [("sd1", {"l": 49407}), ("sd2", {"h": 0}), ("sdxl", {"l": 49407, "g": 0}), ("sdxl-refiner", {"g": 0})])
def test_each_encoder_pads_with_its_reference_token(family, pads):
    clip = load_clip(tiny_text_encoder_state_dict(family, 0), family, tiny_text_arch_overrides(family))
    tokens = clip.tokenize("a cat")
    assert {key: chunks[0][-1][0] for key, chunks in tokens.items()} == pads
