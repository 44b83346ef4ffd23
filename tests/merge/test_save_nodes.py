"""Save nodes: ComfyUI's folders and names, atomic never-overwriting writes, files our loaders read back."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from diffusion.checkpoint import load_checkpoint, load_unet_file, load_vae_file
from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
from diffusion.memory import ModelManager
from diffusion.text.loader import load_clip_from_state_dicts
from nodes import model_saving

PROMPT = {"1": {"class_type": "CheckpointSave", "inputs": {}}}
WORKFLOW = {"nodes": [], "links": []}


def _metadata(path):
    with safe_open(str(path), "pt") as handle:
        return handle.metadata() or {}


def _equal_state(a, b):
    assert sorted(a) == sorted(b)
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("variant", ["sd1", "sdxl"])
def test_checkpoint_save_writes_counted_files_that_load_back_identically(variant, services, tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint(variant), services.model_manager)
    node = model_saving.CheckpointSave()
    first = node.save(loaded.model, loaded.clip, loaded.vae, "checkpoints/ComfyUI", PROMPT, {"workflow": WORKFLOW})
    second = node.save(loaded.model, loaded.clip, loaded.vae, "checkpoints/ComfyUI", PROMPT, {"workflow": WORKFLOW})
    names = [r["ui"]["files"][0]["filename"] for r in (first, second)]
    assert names == ["ComfyUI_00001_.safetensors", "ComfyUI_00002_.safetensors"]
    folder = services.paths.output_directory / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary files left behind
    assert first["ui"]["files"][0]["subfolder"] == "checkpoints"

    path = folder / names[0]
    meta = _metadata(path)
    assert json.loads(meta["prompt"]) == PROMPT and json.loads(meta["workflow"]) == WORKFLOW
    assert meta["modelspec.predict_key"] == "epsilon"
    if variant == "sdxl":
        assert meta["modelspec.title"] == "ComfyUI 1"
    again = load_checkpoint(path, ModelManager("cpu"))
    assert again.info == loaded.info
    original, _ = read_state_dict(tiny_checkpoint(variant))
    written, _ = read_state_dict(path)
    assert _equal_state({k: v for k, v in original.items() if not k.endswith("logit_scale")}, written)


def test_disable_metadata_leaves_out_prompt_and_workflow(services, tiny_checkpoint):
    services.settings["disable_metadata"] = True
    loaded = load_checkpoint(tiny_checkpoint("sd1", text=False), services.model_manager)
    result = model_saving.ModelSave().save(loaded.model, "diffusion_models/ComfyUI", PROMPT, {"workflow": WORKFLOW})
    meta = _metadata(services.paths.output_directory / "diffusion_models" / result["ui"]["files"][0]["filename"])
    assert "prompt" not in meta and "workflow" not in meta
    assert "latentgraph.arch" in meta and meta["modelspec.predict_key"] == "epsilon"


def test_model_save_writes_the_unet_in_checkpoint_layout(services, tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint("sd2-v", text=False), services.model_manager)
    result = model_saving.ModelSave().save(loaded.model, "diffusion_models/ComfyUI")
    path = services.paths.output_directory / "diffusion_models" / result["ui"]["files"][0]["filename"]
    written, _ = read_state_dict(path)
    assert all(k.startswith("model.diffusion_model.") for k in written if k != "v_pred") and "v_pred" in written
    model = load_unet_file(path, ModelManager("cpu"))
    assert model.unet_config == loaded.model.unet_config and model.sampling_config == loaded.model.sampling_config
    assert _equal_state(model.diffusion_model.state_dict(), loaded.model.diffusion_model.state_dict())


@pytest.mark.parametrize("variant", ["sd2", "sdxl"])
def test_clip_save_writes_one_loadable_file_per_encoder(variant, services, tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint(variant), services.model_manager)
    result = model_saving.CLIPSave().save(loaded.clip, "clip/ComfyUI", PROMPT)
    names = [f["filename"] for f in result["ui"]["files"]]
    expected = {"sd2": ["ComfyUI_clip_h_00001_.safetensors"],
                "sdxl": ["ComfyUI_clip_l_00001_.safetensors", "ComfyUI_clip_g_00001_.safetensors"]}[variant]
    assert names == expected
    paths = [services.paths.output_directory / "clip" / n for n in names]
    assert _metadata(paths[0])["format"] == "pt"
    files = [read_state_dict(p) for p in paths]
    clip = load_clip_from_state_dicts([sd for sd, _ in files], [parse_arch_metadata(m) for _, m in files])
    assert clip.family == loaded.clip.family
    tokens = loaded.clip.tokenize("a tiny test")
    assert torch.equal(clip.encode_from_tokens(tokens), loaded.clip.encode_from_tokens(tokens))


def test_vae_save_writes_a_standalone_vae(services, tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint("sdxl", text=False), services.model_manager)
    result = model_saving.VAESave().save(loaded.vae, "vae/ComfyUI_vae")
    path = services.paths.output_directory / "vae" / result["ui"]["files"][0]["filename"]
    assert path.name == "ComfyUI_vae_00001_.safetensors"
    vae = load_vae_file(path, ModelManager("cpu"))
    assert _equal_state(vae.model.state_dict(), loaded.vae.model.state_dict())


def test_an_escaping_prefix_is_refused_before_running(services):
    assert model_saving.CheckpointSave.VALIDATE_INPUTS("checkpoints/ok") is True
    assert "not allowed" in model_saving.CheckpointSave.VALIDATE_INPUTS("../../outside")


def test_a_file_created_meanwhile_is_never_overwritten(services, tiny_checkpoint, monkeypatch):
    loaded = load_checkpoint(tiny_checkpoint("sd1", text=False), services.model_manager)
    folder = services.paths.output_directory / "vae"
    folder.mkdir(parents=True, exist_ok=True)
    # Another writer takes counter 1 after the counter was chosen (the listing saw an empty folder).
    original_write = model_saving.write_new_file

    def racing_write(directory, name_for_counter, counter, data):
        (directory / name_for_counter(counter)).write_bytes(b"someone else's file")
        return original_write(directory, name_for_counter, counter, data)

    monkeypatch.setattr(model_saving, "write_new_file", racing_write)
    result = model_saving.VAESave().save(loaded.vae, "vae/ComfyUI_vae")
    assert result["ui"]["files"][0]["filename"] == "ComfyUI_vae_00002_.safetensors"
    assert (folder / "ComfyUI_vae_00001_.safetensors").read_bytes() == b"someone else's file"


def test_a_checkpoint_of_mixed_families_is_refused(services, tiny_checkpoint):
    sd1 = load_checkpoint(tiny_checkpoint("sd1"), services.model_manager)
    xl = load_checkpoint(tiny_checkpoint("sdxl"), services.model_manager)
    with pytest.raises(ValueError, match="the CLIP is sdxl, the MODEL sd1"):
        model_saving.CheckpointSave().save(sd1.model, xl.clip, sd1.vae, "checkpoints/mixed")
    assert not (services.paths.output_directory / "checkpoints").exists()


def test_lora_save_without_a_difference_writes_nothing(services):
    assert model_saving.LoraSave().save("loras/none", 8, "standard", True) == {}
    assert not (services.paths.output_directory / "loras").exists()
