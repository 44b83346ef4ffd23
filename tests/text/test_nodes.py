"""Text-encoder and conditioning nodes: ComfyUI ABI, conditioning shapes and semantics."""

import json

import pytest
import torch
from safetensors.torch import save_file

from diffusion.text.loader import load_clip
from diffusion.text.tiny import tiny_text_arch_overrides, tiny_text_encoder_state_dict
from diffusion.text.tokenizer import EmbeddingVector
from engine.paths import FolderPaths
from engine.registry import NodeRegistry
from engine.runtime import Services, using_services
from nodes import clip as clip_nodes
from nodes import conditioning as cond_nodes


@pytest.fixture(scope="module")
def sd1():
    return load_clip(tiny_text_encoder_state_dict("sd1", 0), "sd1", tiny_text_arch_overrides("sd1"))


@pytest.fixture(scope="module")
def sdxl():
    return load_clip(tiny_text_encoder_state_dict("sdxl", 0), "sdxl", tiny_text_arch_overrides("sdxl"))


@pytest.fixture
def services(tmp_path):
    paths = FolderPaths(tmp_path)
    paths.ensure_directories()
    value = Services(paths=paths)
    with using_services(value):
        yield value


def test_nodes_register_without_problems(services):
    registry = NodeRegistry()
    registry.register_mappings(clip_nodes.NODE_CLASS_MAPPINGS, clip_nodes.NODE_DISPLAY_NAME_MAPPINGS, "nodes.clip")
    registry.register_mappings(cond_nodes.NODE_CLASS_MAPPINGS, cond_nodes.NODE_DISPLAY_NAME_MAPPINGS, "nodes.conditioning")
    assert not registry.problems
    info = registry.object_info_for("CLIPTextEncodeSDXL")
    assert list(info["input"]["required"]) == [
        "width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "clip", "text_l"
    ]
    assert registry.object_info_for("CLIPSetLastLayer")["input"]["required"]["stop_at_clip_layer"][1]["default"] == -1


def test_clip_text_encode_returns_conditioning_with_pooled_output(sd1):
    [[cond, options]] = clip_nodes.CLIPTextEncode().encode(sd1, "a photo of a cat")[0]
    assert cond.shape == (1, 77, 32)
    assert options["pooled_output"].shape == (1, 32)


def test_prompt_weight_is_applied_relative_to_the_empty_prompt(sd1):
    plain = sd1.tokenize("a cat")
    weighted = sd1.tokenize("a (cat:1.5)")
    z = sd1.encode_from_tokens(plain)
    z_empty = sd1.encode_from_tokens(sd1.tokenize(""))
    got = sd1.encode_from_tokens(weighted)
    cat_position = 2
    expected = z.clone()
    expected[0, cat_position] = z_empty[0, cat_position] + 1.5 * (z[0, cat_position] - z_empty[0, cat_position])
    assert torch.allclose(got, expected, atol=1e-5)


def test_long_prompt_gives_77_tokens_per_chunk(sd1):
    [[cond, _]] = clip_nodes.CLIPTextEncode().encode(sd1, "cat " * 100)[0]
    assert cond.shape == (1, 154, 32)


def test_clip_set_last_layer_changes_a_clone_only(sd1):
    [skipped] = clip_nodes.CLIPSetLastLayer().set_last_layer(sd1, -2)
    assert sd1.layer_idx is None and skipped.layer_idx == -2
    tokens = sd1.tokenize("a cat")
    assert not torch.allclose(sd1.encode_from_tokens(tokens), skipped.encode_from_tokens(tokens))
    assert skipped.encoders["l"].model is sd1.encoders["l"].model  # shares the network


def test_clip_text_encode_sdxl_micro_conditioning_and_equal_lengths(sdxl):
    node = clip_nodes.CLIPTextEncodeSDXL()
    [[cond, options]] = node.encode(sdxl, 1024, 768, 16, 8, 1024, 1024, "a cat", "cat " * 100)[0]
    assert cond.shape == (1, 154, 96)
    assert options["pooled_output"].shape == (1, 64)
    assert (options["width"], options["height"], options["crop_w"], options["crop_h"]) == (1024, 768, 16, 8)
    assert (options["target_width"], options["target_height"]) == (1024, 1024)


def test_sdxl_text_g_and_text_l_reach_their_own_encoder(sdxl):
    node = clip_nodes.CLIPTextEncodeSDXL()
    [[a, _]] = node.encode(sdxl, 1024, 1024, 0, 0, 1024, 1024, "a cat", "a dog")[0]
    [[b, _]] = node.encode(sdxl, 1024, 1024, 0, 0, 1024, 1024, "a cat", "a cat")[0]
    assert not torch.allclose(a[..., :32], b[..., :32])  # CLIP-L part differs
    assert torch.allclose(a[..., 32:], b[..., 32:])  # bigG part identical


def test_refiner_node_stores_aesthetic_score():
    refiner = load_clip(tiny_text_encoder_state_dict("sdxl-refiner", 0), "sdxl-refiner", tiny_text_arch_overrides("sdxl-refiner"))
    [[cond, options]] = clip_nodes.CLIPTextEncodeSDXLRefiner().encode(refiner, 2.5, 1024, 1024, "a cat")[0]
    assert cond.shape == (1, 77, 64)
    assert options["aesthetic_score"] == 2.5 and options["pooled_output"].shape == (1, 64)


def test_missing_clip_is_a_clear_error():
    with pytest.raises(ValueError, match="no text encoder"):
        clip_nodes.CLIPTextEncode().encode(None, "a cat")


def _write(path, state, family):
    metadata = {"latentgraph.arch": json.dumps(tiny_text_arch_overrides(family))}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=metadata)


def test_clip_loader_and_dual_clip_loader_read_text_encoder_files(services, sdxl):
    folder = services.paths.get_folder_paths("text_encoders")[0]
    state = tiny_text_encoder_state_dict("sdxl", 0)
    clip_l = {k.removeprefix("conditioner.embedders.0.transformer."): v for k, v in state.items() if ".0.transformer." in k}
    clip_g = {k.removeprefix("conditioner.embedders.1.model."): v for k, v in state.items() if ".1.model." in k}
    _write(folder / "clip_l.safetensors", clip_l, "sdxl")
    _write(folder / "clip_g.safetensors", clip_g, "sdxl")
    assert "clip_l.safetensors" in clip_nodes.CLIPLoader.INPUT_TYPES()["required"]["clip_name"][0]
    [single] = clip_nodes.CLIPLoader().load_clip("clip_l.safetensors", "stable_diffusion")
    assert single.family == "sd1"
    [dual] = clip_nodes.DualCLIPLoader().load_clip("clip_l.safetensors", "clip_g.safetensors", "sdxl")
    tokens = sdxl.tokenize("a red fox")
    assert torch.allclose(dual.encode_from_tokens(tokens), sdxl.encode_from_tokens(tokens))
    with pytest.raises(FileNotFoundError):
        clip_nodes.CLIPLoader().load_clip("nope.safetensors", "stable_diffusion")


def test_embedding_from_the_embeddings_folder_fills_token_slots(services, sd1):
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    folder = services.paths.get_folder_paths("embeddings")[0]
    save_file({"emb_params": vectors}, str(folder / "mystyle.safetensors"))
    [[cond, _]] = clip_nodes.CLIPTextEncode().encode(sd1, "a embedding:mystyle cat")[0]
    # Reference: the same vectors written into two rows of a copied token table.
    tokens = sd1.tokenize("a cat")["l"]
    ids = [t for t, _ in tokens[0]]
    ids = ids[:2] + [1000, 1001] + ids[2:75]
    model = sd1.encoders["l"].model
    table = model.embeddings.token_embedding.weight if hasattr(model, "embeddings") else model.text_model.embeddings.token_embedding.weight
    saved = table[1000:1002].clone()
    try:
        with torch.no_grad():
            table[1000:1002] = vectors
            expected = model(input_ids=torch.tensor([ids])).last_hidden_state
    finally:
        with torch.no_grad():
            table[1000:1002] = saved
    assert torch.allclose(cond, expected, atol=1e-5)
    slots = [t for t, _ in sd1.tokenize("embedding:mystyle", embeddings=clip_nodes._embeddings(sd1))["l"][0]]
    assert sum(isinstance(t, EmbeddingVector) for t in slots) == 2


def test_embedding_names_cannot_leave_the_folder(services, sd1):
    from engine.errors import PathEscapeError

    with pytest.raises(PathEscapeError):
        clip_nodes.CLIPTextEncode().encode(sd1, "embedding:../../secret")


# conditioning nodes ---------------------------------------------------------------------------

def _cond(value, tokens=77, width=8, **options):
    return [[torch.full((1, tokens, width), float(value)), {"pooled_output": torch.full((1, 4), float(value)), **options}]]


def test_combine_keeps_both_lists_without_touching_inputs():
    a, b = _cond(1), _cond(2)
    [out] = cond_nodes.ConditioningCombine().combine(a, b)
    assert len(out) == 2 and out[0][0] is a[0][0] and out[1][0] is b[0][0]
    assert out[0][1] is not a[0][1]


def test_average_mixes_tokens_and_pooled_and_fits_lengths():
    to, frm = _cond(1), _cond(3, tokens=154)
    [[[cond, options]]] = cond_nodes.ConditioningAverage().addWeighted(to, frm, 0.25)
    assert cond.shape == (1, 77, 8) and torch.allclose(cond, torch.full_like(cond, 2.5))
    assert torch.allclose(options["pooled_output"], torch.full((1, 4), 2.5))
    short = _cond(4, tokens=10)
    [[[cond, _]]] = cond_nodes.ConditioningAverage().addWeighted(to, short, 0.5)
    assert torch.allclose(cond[0, :10], torch.full((10, 8), 2.5)) and torch.allclose(cond[0, 10:], torch.full((67, 8), 0.5))
    assert torch.equal(to[0][0], torch.ones(1, 77, 8))


def test_concat_appends_tokens_and_keeps_to_options():
    to, frm = _cond(1, marker="to"), _cond(2, marker="from")
    [[[cond, options]]] = cond_nodes.ConditioningConcat().concat(to, frm)
    assert cond.shape == (1, 154, 8) and options["marker"] == "to"
    assert torch.equal(cond[0, 77:], torch.full((77, 8), 2.0))


def test_set_area_uses_latent_units():
    [[[_, options]]] = cond_nodes.ConditioningSetArea().append(_cond(1), 256, 128, 64, 32, 0.8)
    assert options["area"] == (16, 32, 4, 8) and options["strength"] == 0.8
    assert options["set_area_to_bounds"] is False


def test_set_area_percentage():
    [[[_, options]]] = cond_nodes.ConditioningSetAreaPercentage().append(_cond(1), 0.5, 0.25, 0.1, 0.2, 1.0)
    assert options["area"] == ("percentage", 0.25, 0.5, 0.2, 0.1)


def test_set_mask_adds_batch_axis_and_bounds_flag():
    mask = torch.ones(64, 64)
    [[[_, options]]] = cond_nodes.ConditioningSetMask().append(_cond(1), mask, "mask bounds", 0.7)
    assert options["mask"].shape == (1, 64, 64)
    assert options["set_area_to_bounds"] is True and options["mask_strength"] == 0.7
    [[[_, options]]] = cond_nodes.ConditioningSetMask().append(_cond(1), mask, "default", 1.0)
    assert options["set_area_to_bounds"] is False


def test_zero_out_zeroes_tokens_and_pooled():
    source = _cond(5)
    [[[cond, options]]] = cond_nodes.ConditioningZeroOut().zero_out(source)
    assert not cond.any() and not options["pooled_output"].any()
    assert source[0][0].eq(5).all()


def test_set_timestep_range():
    [[[_, options]]] = cond_nodes.ConditioningSetTimestepRange().set_range(_cond(1), 0.2, 0.8)
    assert (options["timestep_start"], options["timestep_end"]) == (0.2, 0.8)


def test_set_area_strength_only_changes_strength():
    source = _cond(1, area=(8, 8, 0, 0))
    [[[_, options]]] = cond_nodes.ConditioningSetAreaStrength().append(source, 0.4)
    assert options["strength"] == 0.4 and options["area"] == (8, 8, 0, 0)
    assert "strength" not in source[0][1]
