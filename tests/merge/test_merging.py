"""Merge nodes: the merged weights are the arithmetic on the two state dicts, recorded as patches."""

from __future__ import annotations

import pytest
import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.files import read_state_dict
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.memory import ModelManager
from diffusion.merge.merging import block_ratio
from nodes import model_merging as nodes

UNET = "model.diffusion_model."


@pytest.fixture(scope="module")
def pair_of(tmp_path_factory):
    """``pair_of(variant)``: two tiny checkpoints with different weights, (loaded a, loaded b, file a, file b)."""
    root = tmp_path_factory.mktemp("merge")
    made = {}

    def make(variant: str):
        if variant not in made:
            paths = [write_tiny_checkpoint(root / f"{variant}-{seed}.safetensors", variant, seed=seed) for seed in (0, 1)]
            manager = ModelManager("cpu")
            loaded = [load_checkpoint(path, manager) for path in paths]
            files = [read_state_dict(path)[0] for path in paths]
            made[variant] = (loaded[0], loaded[1], files[0], files[1])
        return made[variant]

    return make


@pytest.fixture(scope="module")
def pair(pair_of):
    """Two tiny SD1 checkpoints with different weights."""
    return pair_of("sd1")


def _unet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key[len(UNET) :]: value for key, value in state.items() if key.startswith(UNET)}


def _merged_unet(model) -> dict[str, torch.Tensor]:
    return {k.removeprefix("diffusion_model."): v for k, v in model.patched_state_dict("diffusion_model.").items()}


def _assert_each(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=1e-6, atol=1e-7, msg=key)


def test_merge_simple_is_the_weighted_sum(pair):
    a, b, file_a, file_b = pair
    (merged,) = nodes.ModelMergeSimple().merge(a.model, b.model, 0.3)
    expected = {k: 0.3 * v + 0.7 * _unet(file_b)[k] for k, v in _unet(file_a).items()}
    _assert_each(_merged_unet(merged), expected)
    assert merged.is_clone(a.model) and not a.model.patches  # a patched clone; the input is untouched
    _assert_each(_merged_unet(a.model), _unet(file_a))


def test_add_and_subtract_are_the_sum_and_the_scaled_difference(pair):
    a, b, file_a, file_b = pair
    ua, ub = _unet(file_a), _unet(file_b)
    (added,) = nodes.ModelMergeAdd().merge(a.model, b.model)
    _assert_each(_merged_unet(added), {k: ua[k] + ub[k] for k in ua})
    (difference,) = nodes.ModelMergeSubtract().merge(a.model, b.model, 0.5)
    _assert_each(_merged_unet(difference), {k: 0.5 * (ua[k] - ub[k]) for k in ua})
    # b + (a − b) = a: a merge input that carries its own patches is merged with them
    (full_difference,) = nodes.ModelMergeSubtract().merge(a.model, b.model, 1.0)
    (restored,) = nodes.ModelMergeAdd().merge(b.model, full_difference)
    _assert_each(_merged_unet(restored), ua)


def test_block_merge_takes_each_weights_ratio_from_its_longest_prefix(pair):
    a, b, file_a, file_b = pair
    ua, ub = _unet(file_a), _unet(file_b)
    (merged,) = nodes.ModelMergeBlocks().merge(a.model, b.model, input=0.2, middle=0.5, out=0.9)

    def ratio(key: str) -> float:
        if key.startswith("middle"):
            return 0.5
        if key.startswith("out"):  # out.* and output_blocks.* (ComfyUI's prefix rule)
            return 0.9
        return 0.2  # input_blocks.*, and time_embed.* takes the first block's ratio
    _assert_each(_merged_unet(merged), {k: ratio(k) * ua[k] + (1 - ratio(k)) * ub[k] for k in ua})


def test_model_specific_block_merge_uses_every_block_input(pair):
    a, b, file_a, file_b = pair
    ua, ub = _unet(file_a), _unet(file_b)
    names = list(nodes.ModelMergeSD1.block_inputs())
    ratios = {name: round(0.02 * index, 2) for index, name in enumerate(names)}
    (merged,) = nodes.ModelMergeSD2().merge(a.model, b.model, **ratios)
    expected = {}
    for key in ua:
        r = next(ratios[name] for name in names if key.startswith(name))
        expected[key] = r * ua[key] + (1 - r) * ub[key]
    _assert_each(_merged_unet(merged), expected)
    with pytest.raises(ValueError, match="no block input"):
        nodes.ModelMergeSD1().merge(a.model, b.model, **ratios, bogus=0.5)


def test_block_ratio_prefers_the_longest_matching_prefix():
    ratios = {"input_blocks.1": 0.1, "input_blocks.1.1.": 0.7, "out": 0.3}
    assert block_ratio("input_blocks.1.1.proj_in.weight", ratios, 0.5) == 0.7
    assert block_ratio("input_blocks.1.0.in_layers.0.weight", ratios, 0.5) == 0.1
    assert block_ratio("input_blocks.11.0.in_layers.0.weight", ratios, 0.5) == 0.1  # SDXL-style prefix, no dot
    assert block_ratio("output_blocks.2.1.conv.weight", ratios, 0.5) == 0.3
    assert block_ratio("time_embed.0.weight", ratios, 0.5) == 0.5


def test_clip_merges_are_the_same_arithmetic_on_the_text_encoders(pair):
    a, b, _, _ = pair
    ca, cb = a.clip.get_sd(), b.clip.get_sd()
    (merged,) = nodes.CLIPMergeSimple().merge(a.clip, b.clip, 0.25)
    _assert_each(merged.get_sd(), {k: 0.25 * ca[k] + 0.75 * cb[k] for k in ca})
    (added,) = nodes.CLIPMergeAdd().merge(a.clip, b.clip)
    _assert_each(added.get_sd(), {k: ca[k] + cb[k] for k in ca})
    (difference,) = nodes.CLIPMergeSubtract().merge(a.clip, b.clip, 2.0)
    _assert_each(difference.get_sd(), {k: 2.0 * (ca[k] - cb[k]) for k in ca})
    _assert_each(a.clip.get_sd(), ca)  # the inputs keep their weights
    tokens = a.clip.tokenize("a cube")
    assert not torch.equal(merged.encode_from_tokens(tokens), a.clip.encode_from_tokens(tokens))


def _lora_delta(lora: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    up, down = lora[f"{name}.lora_up.weight"].float(), lora[f"{name}.lora_down.weight"].float()
    scale = lora[f"{name}.alpha"].float() / down.shape[0]
    return scale * (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], *down.shape[1:])


def test_lora_save_of_a_full_rank_difference_reproduces_it(pair, tmp_path):
    from diffusion.merge.lora_extract import text_lora_name, unet_lora_name
    from engine.paths import FolderPaths
    from engine.runtime import Services, using_services
    from nodes.model_saving import LoraSave

    a, b, _, _ = pair
    (model_diff,) = nodes.ModelMergeSubtract().merge(a.model, b.model, 1.0)
    (clip_diff,) = nodes.CLIPMergeSubtract().merge(a.clip, b.clip, 1.0)
    differences = {**model_diff.patched_state_dict("diffusion_model."), **clip_diff.get_sd()}
    paths = FolderPaths(tmp_path)
    with using_services(Services(paths=paths, model_manager=ModelManager("cpu"), settings={})):
        result = LoraSave().save("loras/extracted", 4096, "standard", True, model_diff, clip_diff)
    entry = result["ui"]["files"][0]
    assert (entry["subfolder"], entry["filename"]) == ("loras", "extracted_00001_.safetensors")
    lora, _ = read_state_dict(paths.output_directory / "loras" / entry["filename"])
    encoders = {key.split(".", 1)[0] for key in differences if ".transformer." in key}
    for key, diff in differences.items():
        name = unet_lora_name(key) if key.startswith("diffusion_model.") else text_lora_name(key, encoders)
        if key.endswith(".bias"):
            got = lora[f"{name}.diff_b"].float()
        elif diff.ndim == 1:
            got = lora[f"{name}.diff"].float()
        else:
            got = _lora_delta(lora, name)
        # fp16 storage of the factors: relative error of a few 1e-3 of the largest entry
        torch.testing.assert_close(got, diff, rtol=0, atol=4e-3 * diff.abs().max().item(), msg=key)


@pytest.mark.parametrize("variant", ["sd1", "sdxl"])
def test_saved_merge_reloads_with_identical_weights_and_outputs(variant, pair_of, tmp_path):
    from diffusion.checkpoint.export import checkpoint_metadata, checkpoint_state_dict, safetensors_file_bytes

    a, b, _, _ = pair_of(variant)
    (model,) = nodes.ModelMergeBlocks().merge(a.model, b.model, input=0.3, middle=0.6, out=0.8)
    (clip,) = nodes.CLIPMergeSimple().merge(a.clip, b.clip, 0.5)
    path = tmp_path / "merged.safetensors"
    path.write_bytes(safetensors_file_bytes(checkpoint_state_dict(model, clip, a.vae), checkpoint_metadata(model, clip, "m")))
    reloaded = load_checkpoint(path, ModelManager("cpu"))

    merged_weights, saved_weights = model.patched_state_dict(), reloaded.model.patched_state_dict()
    assert all(torch.equal(merged_weights[k], saved_weights[k]) for k in merged_weights)
    tokens = clip.tokenize("a watercolor lighthouse")
    context = clip.encode_from_tokens(tokens)
    assert torch.equal(reloaded.clip.encode_from_tokens(tokens), context)
    x, sigma = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)), torch.tensor([500.0])
    y = model.encode_adm(clip.encode_from_tokens(tokens, return_dict=True), 1)
    assert torch.equal(reloaded.model.apply_model(x, sigma, context, y), model.apply_model(x, sigma, context, y))


@pytest.mark.parametrize("variant", ["sd1", "sdxl"])
def test_extracted_lora_on_model_b_gives_model_a_through_our_lora_loader(variant, pair_of):
    from diffusion.lora.apply import apply_lora
    from diffusion.merge.lora_extract import extract_lora

    a, b, _, _ = pair_of(variant)
    (model_diff,) = nodes.ModelMergeSubtract().merge(a.model, b.model, 1.0)
    (clip_diff,) = nodes.CLIPMergeSubtract().merge(a.clip, b.clip, 1.0)
    lora = extract_lora({**model_diff.patched_state_dict("diffusion_model."), **clip_diff.get_sd()}, rank=4096,
                        dtype=torch.float32)
    applied = apply_lora(b.model, b.clip, lora, 1.0, 1.0, "extracted")
    assert applied.unused_keys == []
    for got, want in ((applied.model.patched_state_dict(), a.model.patched_state_dict()),
                      (applied.clip.get_sd(), a.clip.get_sd())):
        assert sorted(got) == sorted(want)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)


def test_models_of_different_families_are_not_merged(pair_of):
    sd1, xl = pair_of("sd1")[0], pair_of("sdxl")[0]
    with pytest.raises(ValueError, match="cannot merge a sdxl model into a sd1 model"):
        nodes.ModelMergeSimple().merge(sd1.model, xl.model, 0.5)
    with pytest.raises(ValueError, match="cannot merge a sd1 model into a sdxl model"):
        nodes.CLIPMergeAdd().merge(xl.clip, sd1.clip)


def test_add_difference_onto_an_inpainting_model_keeps_its_first_convolution(pair, tmp_path):
    """The classic recipe: inpaint + (custom − base); the 9-channel input conv cannot take a 4-channel diff."""
    a, b, file_a, file_b = pair
    inpaint_path = write_tiny_checkpoint(tmp_path / "inpaint.safetensors", "sd1-inpaint", seed=2)
    inpaint = load_checkpoint(inpaint_path, ModelManager("cpu"))
    (difference,) = nodes.ModelMergeSubtract().merge(a.model, b.model, 1.0)
    (merged,) = nodes.ModelMergeAdd().merge(inpaint.model, difference)
    base, ua, ub = _unet(read_state_dict(inpaint_path)[0]), _unet(file_a), _unet(file_b)
    expected = {k: v if k == "input_blocks.0.0.weight" else v + (ua[k] - ub[k]) for k, v in base.items()}
    _assert_each(_merged_unet(merged), expected)
