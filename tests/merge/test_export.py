"""Exporting loaded models back to single-file checkpoints: the file we read is the file we write."""

from __future__ import annotations

import pytest
import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.export import (
    canonical_to_open_clip,
    checkpoint_metadata,
    checkpoint_state_dict,
    safetensors_file_bytes,
)
from diffusion.checkpoint.files import read_state_dict
from diffusion.memory import ModelManager
from diffusion.text.convert import open_clip_to_canonical

VARIANTS = ["sd1", "sd2", "sd2-v", "sdxl", "sdxl-refiner", "sd1-inpaint"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_of_a_loaded_checkpoint_gives_back_every_tensor_of_the_file(variant, tiny_checkpoint, cpu_manager):
    path = tiny_checkpoint(variant)
    original, _ = read_state_dict(path)
    loaded = load_checkpoint(path, cpu_manager)
    exported = checkpoint_state_dict(loaded.model, loaded.clip, loaded.vae)
    # OpenCLIP's logit_scale belongs to the contrastive head, not to the text encoder SD uses.
    expected = {key: value for key, value in original.items() if not key.endswith(".logit_scale")}
    assert sorted(exported) == sorted(expected)
    different = [key for key in expected if not torch.equal(exported[key], expected[key])]
    assert not different, different[:5]
    assert all(exported[key].dtype == expected[key].dtype for key in expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_written_checkpoint_reloads_with_the_same_detection_and_tensors(variant, tiny_checkpoint, cpu_manager, tmp_path):
    loaded = load_checkpoint(tiny_checkpoint(variant), cpu_manager)
    state = checkpoint_state_dict(loaded.model, loaded.clip, loaded.vae)
    target = tmp_path / "exported.safetensors"
    target.write_bytes(safetensors_file_bytes(state, checkpoint_metadata(loaded.model, loaded.clip, "exported 1")))

    again = load_checkpoint(target, ModelManager("cpu"))
    assert again.info == loaded.info
    assert again.model.sampling_config == loaded.model.sampling_config
    assert [e.arch for e in again.clip.encoders.values()] == [e.arch for e in loaded.clip.encoders.values()]
    reread, _ = read_state_dict(target)
    assert all(torch.equal(reread[key], value) for key, value in state.items())


def test_checkpoint_metadata_has_comfyui_modelspec_fields(tiny_checkpoint, cpu_manager):
    xl = load_checkpoint(tiny_checkpoint("sdxl", text=False), cpu_manager)
    meta = checkpoint_metadata(xl.model, None, "ComfyUI 3")
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    assert meta["modelspec.sai_model_spec"] == "1.0.0"
    assert meta["modelspec.implementation"] == "sgm"
    assert meta["modelspec.title"] == "ComfyUI 3"
    assert meta["modelspec.predict_key"] == "epsilon"
    v = load_checkpoint(tiny_checkpoint("sd2-v", text=False), cpu_manager)
    meta = checkpoint_metadata(v.model, None, "t")
    assert meta["modelspec.predict_key"] == "v" and "modelspec.architecture" not in meta  # as ComfyUI: SDXL only


def test_open_clip_layout_is_the_inverse_of_the_loaders_conversion():
    generator = torch.Generator().manual_seed(0)
    native = {
        "token_embedding.weight": torch.randn(10, 8, generator=generator),
        "positional_embedding": torch.randn(77, 8, generator=generator),
        "transformer.resblocks.0.attn.in_proj_weight": torch.randn(24, 8, generator=generator),
        "transformer.resblocks.0.attn.in_proj_bias": torch.randn(24, generator=generator),
        "transformer.resblocks.0.ln_1.weight": torch.randn(8, generator=generator),
        "ln_final.bias": torch.randn(8, generator=generator),
        "text_projection": torch.randn(8, 4, generator=generator),
    }
    back = canonical_to_open_clip(open_clip_to_canonical(native, ""))
    assert sorted(back) == sorted(native)
    assert all(torch.equal(back[key], native[key]) for key in native)
