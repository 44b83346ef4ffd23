"""The weight-patch contract (docs/PATCH_CONTRACT.md): value forms, copy-on-write, exact restore."""

from __future__ import annotations

import io
import logging
import pathlib

import pytest
import torch
from torch import nn

import diffusion.checkpoint.files as checkpoint_files
from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.weight_patches import PatchedWeights, WeightAdapter, calculate_weight

ATTN_V = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_v.weight"
CLIP_Q = "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"


def _entry(value, strength=1.0, strength_model=1.0, offset=None, function=None):
    return (strength, value, strength_model, offset, function)


class _Scale(WeightAdapter):
    """A test adapter: new weight = weight · (1 + strength); counts its calls."""

    name = "scale"

    def __init__(self) -> None:
        self.calls = 0

    def calculate_weight(self, weight, key, strength, strength_model, offset, function, intermediate_dtype=torch.float32, original_weights=None):
        self.calls += 1
        weight += function(strength * weight)
        return weight


def _unet(tiny_checkpoint, manager, variant="sd1"):
    return load_checkpoint(tiny_checkpoint(variant, text=False), manager, load_clip=False, load_vae=False).model


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 4, 8, 8, generator=g), torch.tensor([400.0]), torch.randn(1, 77, 32, generator=g)


# calculate_weight: every value form -------------------------------------------------------------
def test_diff_forms_add_strength_times_tensor():
    w = torch.randn(3, 4)
    d = torch.randn(3, 4)
    assert torch.allclose(calculate_weight([_entry((d,), 0.5)], w.clone(), "k"), w + 0.5 * d)
    assert torch.allclose(calculate_weight([_entry(("diff", (d,)), 2.0)], w.clone(), "k"), w + 2.0 * d)


def test_strength_model_scales_the_base_before_the_change():
    w, d = torch.randn(3, 4), torch.randn(3, 4)
    out = calculate_weight([_entry((d,), 0.3, strength_model=0.7)], w.clone(), "k")
    assert torch.allclose(out, 0.7 * w + 0.3 * d)


def test_set_replaces_and_entries_apply_in_order():
    w, s, d = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    out = calculate_weight([_entry((d,)), _entry(("set", (s,))), _entry((d,), 2.0)], w.clone(), "k")
    assert torch.allclose(out, s + 2.0 * d)


def test_offset_patches_a_slice_and_function_post_processes():
    w, d = torch.randn(6, 4), torch.randn(2, 4)
    out = calculate_weight([_entry((d,), 1.0, offset=(0, 2, 2), function=torch.neg)], w.clone(), "k")
    expected = w.clone()
    expected[2:4] -= d
    assert torch.allclose(out, expected)


def test_list_value_is_another_models_effective_weight():
    """ComfyUI's ModelMergeSimple: base·ratio + other(with its own patches)·(1 − ratio)."""
    w1, w2, lora = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    other = [(w2,), _entry((lora,), 0.5)]
    out = calculate_weight([_entry(other, 0.25, strength_model=0.75)], w1.clone(), "k")
    assert torch.allclose(out, 0.75 * w1 + 0.25 * (w2 + 0.5 * lora))
    assert torch.equal(other[0][0], w2.clone())  # the other model's tensor was not written to


def test_model_as_lora_adds_the_difference_to_the_original():
    w, target, original = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    out = calculate_weight(
        [_entry(("model_as_lora", (target, original)), 0.5)], w.clone(), "k", original_weights={"k": [(original,)]}
    )
    assert torch.allclose(out, w + 0.5 * (target - original))


def test_adapter_objects_compute_the_new_weight():
    w = torch.randn(3, 4)
    assert torch.allclose(calculate_weight([_entry(_Scale(), 0.5)], w.clone(), "k"), 1.5 * w)


def test_shape_mismatch_is_skipped_with_a_warning(caplog):
    w = torch.randn(3, 4)
    with caplog.at_level(logging.WARNING):
        out = calculate_weight([_entry((torch.ones(4, 3),))], w.clone(), "some.key")
    assert torch.equal(out, w) and "some.key" in caplog.text


# application on a network ----------------------------------------------------------------------
def test_patched_weights_compute_in_fp32_and_cast_back_to_storage_dtype():
    layer = nn.Linear(4, 4).half()
    original = layer.weight.data
    patched = PatchedWeights(layer, {"weight": "weight"})
    diff = torch.full((4, 4), 1e-3)
    patched.apply({"weight": [_entry((diff,), 3.0)]}, identity="a")
    assert layer.weight.dtype == torch.float16
    assert torch.equal(layer.weight.data, (original.float() + 3e-3).half())
    patched.restore()
    assert layer.weight.data_ptr() == original.data_ptr()


def test_unpatch_restores_every_weight_bitwise(tiny_checkpoint, cpu_manager):
    model = _unet(tiny_checkpoint, cpu_manager)
    snapshot = {k: v.clone() for k, v in model.model_state_dict().items()}
    patched = model.clone()
    patched.add_patches({k: (torch.randn_like(v),) for k, v in snapshot.items()}, 0.1)
    patched.add_patches({k: _Scale() for k in snapshot}, 0.5, 0.9)
    x, t, c = _inputs()
    patched.apply_model(x, t, c)
    assert any(not torch.equal(p, snapshot[k]) for k, p in patched.patched_state_dict().items())
    model.apply_model(x, t, c)
    live = dict(model.diffusion_model.named_parameters())
    assert all(torch.equal(live[k.removeprefix("diffusion_model.")], v) for k, v in snapshot.items())


def test_an_identical_patch_set_is_not_reapplied(tiny_checkpoint, cpu_manager):
    model = _unet(tiny_checkpoint, cpu_manager)
    adapter = _Scale()
    patched = model.clone()
    patched.add_patches({ATTN_V: adapter}, 0.5)
    x, t, c = _inputs()
    first = patched.apply_model(x, t, c)
    patched.apply_model(x, t, c)
    twin = patched.clone()  # a clone shares the patch set's identity
    assert torch.equal(twin.apply_model(x, t, c), first)
    assert adapter.calls == 1
    model.apply_model(x, t, c)
    patched.apply_model(x, t, c)
    assert adapter.calls == 2


def test_strength_changes_and_stacking_never_read_the_checkpoint(tiny_checkpoint, cpu_manager, monkeypatch):
    model = _unet(tiny_checkpoint, cpu_manager)
    reads = []
    real_read, real_open = checkpoint_files.read_state_dict, pathlib.Path.open
    monkeypatch.setattr(checkpoint_files, "read_state_dict", lambda *a: reads.append(a) or real_read(*a))
    monkeypatch.setattr(pathlib.Path, "open", lambda path, *a, **k: reads.append(path) or real_open(path, *a, **k))
    monkeypatch.setattr("builtins.open", lambda *a, **k: reads.append(a[0]) or io.open(*a, **k))
    x, t, c = _inputs()
    diff = torch.randn_like(model.model_state_dict()[ATTN_V])
    outputs = []
    for strength in (1.0, 0.5, 0.0):
        patched = model.clone()
        patched.add_patches({ATTN_V: (diff,)}, strength)
        outputs.append(patched.apply_model(x, t, c))
    stacked = patched.clone()
    stacked.add_patches({ATTN_V: ("diff", (diff,))}, 0.5)
    stacked.apply_model(x, t, c)
    assert reads == []
    assert torch.allclose(outputs[2], model.apply_model(x, t, c))
    assert not torch.allclose(outputs[0], outputs[1])


def test_clones_do_not_share_patch_lists(tiny_checkpoint, cpu_manager):
    model = _unet(tiny_checkpoint, cpu_manager)
    a = model.clone()
    a.add_patches({ATTN_V: (torch.zeros(1),)})
    b = a.clone()
    b.add_patches({ATTN_V: (torch.zeros(1),)})
    assert len(a.patches[ATTN_V]) == 1 and len(b.patches[ATTN_V]) == 2 and model.patches == {}
    assert a.patches_uuid != b.patches_uuid


def test_merge_by_patches_equals_state_dict_arithmetic(tiny_checkpoint, cpu_manager, tmp_path):
    first = _unet(tiny_checkpoint, cpu_manager)
    other_path = write_tiny_checkpoint(tmp_path / "other.safetensors", "sd1", seed=1, include_text=False)
    second = load_checkpoint(other_path, cpu_manager, load_clip=False, load_vae=False).model
    ratio = 0.3
    merged = first.clone()
    incoming = second.get_key_patches("diffusion_model.")
    assert incoming[ATTN_V][0][0].data_ptr() == second.model_state_dict()[ATTN_V].data_ptr()
    merged.add_patches(incoming, 1.0 - ratio, ratio)
    sd1, sd2 = first.model_state_dict(), second.model_state_dict()
    result = merged.patched_state_dict()
    for key in (ATTN_V, "diffusion_model.out.2.bias"):
        assert torch.allclose(result[key], ratio * sd1[key] + (1 - ratio) * sd2[key], atol=1e-6)


def test_get_key_patches_lists_base_weight_then_entries(tiny_checkpoint, cpu_manager):
    model = _unet(tiny_checkpoint, cpu_manager).clone()
    diff = torch.zeros(1)
    model.add_patches({ATTN_V: (diff,)}, 0.5)
    patches = model.get_key_patches()
    assert set(patches) == set(model.model_state_dict())
    assert patches[ATTN_V][1] == (0.5, (diff,), 1.0, None, None)
    assert len(patches["diffusion_model.out.2.bias"]) == 1


# CLIP ------------------------------------------------------------------------------------------
def test_clip_patches_use_comfyui_keys_and_stay_on_the_clone(tiny_checkpoint, cpu_manager):
    clip = load_checkpoint(tiny_checkpoint("sd1"), cpu_manager, load_vae=False).clip
    keys = clip.get_key_patches()
    assert CLIP_Q in keys and all(k.startswith("clip_l.transformer.text_model.") for k in keys)
    tokens = clip.tokenize("a red cat")
    before = clip.encode_from_tokens(tokens)
    original = keys[CLIP_Q][0][0]
    snapshot = {k: v[0][0].clone() for k, v in keys.items()}
    patched = clip.clone()
    assert patched.add_patches({CLIP_Q: (torch.randn_like(original),), "clip_l.nope": (original,)}) == [CLIP_Q]
    assert not torch.allclose(patched.encode_from_tokens(tokens), before)
    assert clip.patches == {}
    assert torch.equal(clip.encode_from_tokens(tokens), before)
    assert all(torch.equal(clip.get_key_patches()[k][0][0], v) for k, v in snapshot.items())


def test_sdxl_clip_exposes_both_encoders_and_the_bigg_projection(tiny_checkpoint, cpu_manager):
    clip = load_checkpoint(tiny_checkpoint("sdxl"), cpu_manager, load_vae=False).clip
    keys = clip.get_key_patches()
    assert "clip_g.transformer.text_projection.weight" in keys
    assert any(k.startswith("clip_l.transformer.text_model.") for k in keys)
    sd = clip.clone().get_sd()
    assert set(sd) == set(keys)


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_clip_get_sd_holds_the_patched_weights(tiny_checkpoint, cpu_manager, strength):
    clip = load_checkpoint(tiny_checkpoint("sd1"), cpu_manager, load_vae=False).clip
    original = clip.get_key_patches()[CLIP_Q][0][0]
    patched = clip.clone()
    patched.add_patches({CLIP_Q: (torch.ones_like(original),)}, strength)
    saved = patched.get_sd()
    clip.encode_from_tokens(clip.tokenize("x"))  # restores the originals; the saved dict is unaffected
    assert torch.allclose(saved[CLIP_Q], original + strength)


# accounting and memory modes ---------------------------------------------------------------------
def test_a_patched_clone_adds_only_its_patch_tensors_to_the_cache(tiny_checkpoint, cpu_manager):
    from engine.sizing import value_nbytes

    model = _unet(tiny_checkpoint, cpu_manager)
    diff = torch.randn_like(model.model_state_dict()[ATTN_V])
    one = model.clone()
    one.add_patches({ATTN_V: (diff,)})
    two = one.clone()  # stacks a second LoRA on the first: shares the first one's tensors
    two.add_patches({ATTN_V: ("diff", (diff * 2,))})
    base = value_nbytes([model])
    extra = value_nbytes([model, one, two]) - base
    assert 2 * diff.numel() * 4 <= extra < 2 * diff.numel() * 4 + 200
    assert one.cache_size_bytes() == model.cache_size_bytes() + diff.numel() * 4


def test_patches_work_with_lowvram_and_a_budget(tiny_checkpoint):
    from diffusion.memory import ModelManager

    x, t, c = _inputs()
    plain = _unet(tiny_checkpoint, ModelManager("cpu"))
    diff = torch.randn_like(plain.model_state_dict()[ATTN_V])
    reference = plain.clone()
    reference.add_patches({ATTN_V: (diff,)}, 0.7)
    expected = reference.apply_model(x, t, c)
    for manager in (ModelManager("cpu", lowvram=True), ModelManager("cpu", vram_budget_bytes=1)):
        model = _unet(tiny_checkpoint, manager)
        other = _unet(tiny_checkpoint, manager, "sd2")  # a second network competing for the budget
        patched = model.clone()
        patched.add_patches({ATTN_V: (diff,)}, 0.7)
        for _ in range(2):
            assert torch.equal(patched.apply_model(x, t, c), expected)
            other.apply_model(x, t, c)
        assert torch.equal(model.apply_model(x, t, c), plain.apply_model(x, t, c))
