"""CLIP values speak ComfyUI's CLIP interface (tokenize, encode_from_tokens…, cond_stage_model, load_sd)."""

from __future__ import annotations

import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.tiny import write_tiny_checkpoint


def _clip(path, manager):
    return load_checkpoint(path, manager, load_vae=False).clip


def test_tokens_and_encodings_have_comfyui_shapes(tiny_checkpoint, cpu_manager):
    clip = _clip(tiny_checkpoint("sdxl"), cpu_manager)
    tokens = clip.tokenize("a (red:1.2) cat")
    assert set(tokens) == {"l", "g"}
    chunk = tokens["l"][0]
    assert len(chunk) == 77 and all(len(pair) == 2 for pair in chunk)
    assert any(weight == 1.2 for _, weight in chunk)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    as_dict = clip.encode_from_tokens(tokens, return_dict=True)
    assert torch.equal(as_dict["cond"], cond) and torch.equal(as_dict["pooled_output"], pooled)
    [[scheduled, extra]] = clip.encode_from_tokens_scheduled(tokens, add_dict={"width": 512})
    assert torch.equal(scheduled, cond) and torch.equal(extra["pooled_output"], pooled) and extra["width"] == 512


def test_cond_stage_model_layer_options_act_on_the_handle(tiny_checkpoint, cpu_manager):
    clip = _clip(tiny_checkpoint("sd1"), cpu_manager)
    tokens = clip.tokenize("a cat")
    default = clip.encode_from_tokens(tokens)
    skip = clip.clone()
    skip.cond_stage_model.clip_layer(-2)
    reference = clip.clone()
    reference.set_last_layer(-2)
    assert torch.equal(skip.encode_from_tokens(tokens), reference.encode_from_tokens(tokens))
    assert not torch.equal(skip.encode_from_tokens(tokens), default)
    skip.cond_stage_model.reset_clip_options()
    assert torch.equal(skip.encode_from_tokens(tokens), default)
    assert torch.equal(clip.encode_from_tokens(tokens), default)
    assert set(clip.cond_stage_model.state_dict()) == set(clip.get_key_patches())


def test_load_sd_takes_another_clips_weights_on_the_clone_only(tiny_checkpoint, cpu_manager, tmp_path):
    first = _clip(tiny_checkpoint("sd1"), cpu_manager)
    second = _clip(write_tiny_checkpoint(tmp_path / "b.safetensors", "sd1", seed=1), cpu_manager)
    tokens = first.tokenize("a cat")
    before = first.encode_from_tokens(tokens)
    swapped = first.clone()
    missing, unexpected = swapped.load_sd({**second.get_sd(), "clip_l.bogus": torch.zeros(1)})
    assert missing == [] and unexpected == ["clip_l.bogus"]
    assert torch.equal(swapped.encode_from_tokens(tokens), second.encode_from_tokens(tokens))
    assert torch.equal(first.encode_from_tokens(tokens), before)
