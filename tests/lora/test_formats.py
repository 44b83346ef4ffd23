"""Every LoRA / LyCORIS format, written as a file for the tiny checkpoints, loads without leftovers
and patches the networks (UNet and text encoders) to finite, changed weights."""

import pytest
import torch

from diffusion.checkpoint.loader import load_checkpoint
from diffusion.lora.apply import apply_lora
from diffusion.lora.loader import read_lora_file
from diffusion.lora.tiny import FORMATS, write_random_lora


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    from diffusion.memory import ModelManager

    return {variant: load_checkpoint(tiny_checkpoint(variant), ModelManager("cpu"), load_vae=False)
            for variant in ("sd1", "sdxl")}


@pytest.mark.parametrize("variant", ["sd1", "sdxl"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_and_patches(fmt, variant, loaded, tmp_path):
    suffix = ".pt" if fmt == "lokr" else ".safetensors"  # one format also through the weights_only path
    path = write_random_lora(tmp_path / f"{fmt}{suffix}", fmt, variant, seed=3)
    model, clip = loaded[variant].model, loaded[variant].clip
    applied = apply_lora(model, clip, read_lora_file(path), 0.9, 0.9, path.name)
    assert applied.unused_keys == []
    model_keys = {k for k in applied.model.patches if applied.model.patches[k]}
    clip_keys = {k for k in applied.clip.patches if applied.clip.patches[k]}
    assert model_keys and clip_keys
    original = model.model_state_dict()
    patched = applied.model.patched_state_dict()
    changed = [k for k in model_keys if not torch.equal(patched[k], original[k])]
    assert len(changed) == len(model_keys) and all(torch.isfinite(patched[k]).all() for k in changed)
    merged_clip = applied.clip.get_sd()
    plain_clip = clip.get_sd()
    assert all(not torch.equal(merged_clip[k], plain_clip[k]) for k in clip_keys)
    model.prepare()  # the shared networks go back to the originals for the next case
