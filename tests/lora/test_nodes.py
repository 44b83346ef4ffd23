"""LoRA nodes through the engine: strengths, stacking, copy-on-write, bad files, and no re-reads."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.lora.tiny import random_lora, tiny_lora_target
from tests.support.engine_fixtures import make_runtime, node, run

_RUNS = itertools.count()  # a new SaveLatent prefix per prompt: the save always runs


@pytest.fixture()
def base(lora_base):
    return lora_base


@pytest.fixture()
def runtime(base):
    torch.set_num_threads(1)
    return make_runtime(base)


def _sample_prompt(lora_chain: list[dict]) -> dict:
    """Checkpoint → LoRA nodes (in order) → text encode → 1-step KSampler → output latent."""
    prompt = {"ckpt": node("CheckpointLoaderSimple", ckpt_name="tiny-sd1.safetensors")}
    model, clip = ["ckpt", 0], ["ckpt", 1]
    for index, spec in enumerate(lora_chain):
        name = f"lora{index}"
        prompt[name] = node(spec.get("class_type", "LoraLoader"), model=model, clip=clip, **spec["inputs"])
        model, clip = [name, 0], [name, 1]
    prompt.update(
        pos=node("CLIPTextEncode", clip=clip, text="a lighthouse"),
        neg=node("CLIPTextEncode", clip=clip, text="blurry"),
        latent=node("EmptyLatentImage", width=32, height=32, batch_size=1),
        sample=node("KSampler", model=model, positive=["pos", 0], negative=["neg", 0], latent_image=["latent", 0],
                    seed=3, steps=1, cfg=5.0, sampler_name="euler", scheduler="normal", denoise=1.0),
        save=node("SaveLatent", samples=["sample", 0], filename_prefix=f"lora_test_{next(_RUNS)}"),
    )
    return prompt


def _lora(name: str, strength_model: float = 1.0, strength_clip: float = 1.0) -> dict:
    return {"inputs": {"lora_name": name, "strength_model": strength_model, "strength_clip": strength_clip}}


def _saved_latent(runtime, outcome) -> torch.Tensor:
    from safetensors.torch import load_file

    entry = outcome.outputs["save"]["latents"][0]
    return load_file(str(runtime.paths.output_directory / entry["subfolder"] / entry["filename"]))["latent_tensor"]


def test_strength_zero_returns_the_inputs_unchanged(runtime):
    from nodes.lora import LoraLoader

    marker_model, marker_clip = object(), object()
    assert LoraLoader().load_lora(marker_model, marker_clip, "any", 0.0, 0.0) == (marker_model, marker_clip)


def test_a_lora_changes_the_result_and_stacking_a_second_changes_it_again(runtime, base):
    plain = _saved_after(runtime, _sample_prompt([]))
    one = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.safetensors")]))
    two = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.safetensors"), _lora("tiny-sd1-loha.safetensors")]))
    assert not torch.equal(plain, one) and not torch.equal(one, two)
    # the base model is restored bit for bit: a new seed on it equals a runtime that never saw a LoRA
    fresh = make_runtime(base)
    reseeded = _sample_prompt([])
    reseeded["sample"]["inputs"]["seed"] = 11
    assert torch.equal(_saved_after(runtime, reseeded), _saved_after(fresh, reseeded))


def test_pt_files_load_through_weights_only_and_equal_the_safetensors(runtime):
    a = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.safetensors", 0.7, 0.4)]))
    b = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.pt", 0.7, 0.4)]))
    assert torch.equal(a, b)


def test_strength_changes_read_neither_the_checkpoint_nor_the_lora_again(runtime, monkeypatch):
    reads: list[str] = []
    original_open = Path.open

    def counting_open(self, *args, **kwargs):
        reads.append(self.name)
        return original_open(self, *args, **kwargs)

    import diffusion.lora.loader as lora_loader

    original_read = lora_loader.read_lora_file
    monkeypatch.setattr(Path, "open", counting_open)
    monkeypatch.setattr("nodes.lora.read_lora_file", lambda path: reads.append(Path(path).name) or original_read(path))
    first = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.safetensors", 1.0, 1.0)]))
    assert "tiny-sd1.safetensors" in reads and "tiny-sd1-kohya.safetensors" in reads
    reads.clear()
    second = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.safetensors", 0.3, 1.0)]))
    assert [r for r in reads if r.endswith(".safetensors")] == [], reads
    assert not torch.equal(first, second)


def test_an_sdxl_lora_on_sd1_is_a_node_error_naming_both(runtime):
    outcome, _listener = run(runtime, _sample_prompt([_lora("tiny-sdxl-kohya.safetensors")]))
    assert not outcome.ok
    text = json.dumps(outcome.error, default=str)
    assert "SDXL LoRA" in text and "SD1.x model" in text


def test_a_file_with_no_known_key_is_an_error(runtime, base):
    save_file({"something.else": torch.ones(3)}, str(base / "models" / "loras" / "junk.safetensors"))
    outcome, _listener = run(runtime, _sample_prompt([_lora("junk.safetensors")]))
    assert not outcome.ok
    assert "no key this SD1.x model knows" in json.dumps(outcome.error, default=str)


def test_unknown_keys_are_reported_on_the_node(runtime, base):
    state = random_lora("kohya", tiny_lora_target("sd1"), seed=4)
    state["lora_unet_not_a_module.lora_up.weight"] = torch.zeros(4, 4)
    state["lora_unet_not_a_module.lora_down.weight"] = torch.zeros(4, 4)
    save_file(state, str(base / "models" / "loras" / "partly.safetensors"))
    outcome, _listener = run(runtime, _sample_prompt([_lora("partly.safetensors")]))
    assert outcome.ok
    text = json.dumps(outcome.outputs["lora0"], default=str)
    assert "2 keys not applied" in text and "lora_unet_not_a_module.lora_down.weight" in text


def test_pickles_that_need_code_are_refused(runtime, base):
    import argparse

    torch.save({"x": argparse.Namespace(a=1)}, base / "models" / "loras" / "evil.pt")
    outcome, _listener = run(runtime, _sample_prompt([_lora("evil.pt")]))
    assert not outcome.ok
    assert "unsafe unpickling" in json.dumps(outcome.error, default=str)


def test_model_only_and_the_design_card_node(runtime):
    full = _saved_after(runtime, _sample_prompt([_lora("tiny-sd1-kohya.safetensors", 1.0, 0.0)]))
    prompt = _sample_prompt([])
    prompt["lora0"] = node("LoraLoaderModelOnly", model=["ckpt", 0], lora_name="tiny-sd1-kohya.safetensors", strength_model=1.0)
    prompt["sample"]["inputs"]["model"] = ["lora0", 0]
    model_only = _saved_after(runtime, prompt)
    assert torch.equal(full, model_only)
    card = _saved_after(runtime, _sample_prompt([{"class_type": "LoRA", **_lora("tiny-sd1-kohya.safetensors", 1.0, 0.0)}]))
    assert torch.equal(full, card)


def _saved_after(runtime, prompt) -> torch.Tensor:
    outcome, _listener = run(runtime, prompt)
    assert outcome.ok, outcome.error
    return _saved_latent(runtime, outcome)


def test_object_info_matches_comfyui(runtime):
    info = {name: runtime.registry.object_info_for(name) for name in
            ("LoraLoader", "LoraLoaderModelOnly", "LoRA", "HypernetworkLoader")}
    assert list(info["LoraLoader"]["input"]["required"]) == ["model", "clip", "lora_name", "strength_model", "strength_clip"]
    assert list(info["LoraLoaderModelOnly"]["input"]["required"]) == ["model", "lora_name", "strength_model"]
    assert list(info["HypernetworkLoader"]["input"]["required"]) == ["model", "hypernetwork_name", "strength"]
    assert info["LoRA"]["input"] == info["LoraLoader"]["input"]
    strength = info["LoraLoader"]["input"]["required"]["strength_model"][1]
    assert (strength["default"], strength["min"], strength["max"], strength["step"]) == (1.0, -100.0, 100.0, 0.01)
    hn = info["HypernetworkLoader"]["input"]["required"]["strength"][1]
    assert (hn["default"], hn["min"], hn["max"]) == (1.0, -10.0, 10.0)
    assert {i["category"] for i in info.values()} == {"loaders"}
    assert info["LoraLoader"]["output"] == ["MODEL", "CLIP"] and info["LoraLoaderModelOnly"]["output"] == ["MODEL"]
    assert "tiny-sd1-kohya.safetensors" in info["LoraLoader"]["input"]["required"]["lora_name"][0]


def test_a_module_of_another_shape_is_skipped_and_reported_the_rest_applies(runtime, base):
    state = random_lora("kohya", tiny_lora_target("sd1"), seed=6)
    bad = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    state[f"{bad}.lora_down.weight"] = torch.zeros(4, 7)  # 7 inputs: no such weight here
    save_file(state, str(base / "models" / "loras" / "one-odd.safetensors"))
    outcome, _ = run(runtime, _sample_prompt([_lora("one-odd.safetensors")]))
    assert outcome.ok, outcome.error
    text = json.dumps(outcome.outputs["lora0"])
    assert "2 keys not applied" in text and f"{bad}.lora_down.weight" in text
