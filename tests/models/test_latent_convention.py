"""LATENT values follow ComfyUI's convention: ``samples`` are raw VAE latents; the MODEL scales them.

The factors below are ComfyUI's (comfy/latent_formats.py), written here rather than read from our
code, so the checks are against ComfyUI's arithmetic.
"""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from diffusion.checkpoint import load_checkpoint
from nodes import latent as latent_nodes
from nodes import sampling as sampling_nodes

COMFYUI_SCALE = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025}
CONTEXT = {"sd1": 32, "sd2": 32, "sdxl": 96}


class AddOnes:
    """A node pack written against ComfyUI: adds one to every latent value."""

    def add(self, samples):
        out = samples.copy()
        out["samples"] = samples["samples"] + torch.ones_like(samples["samples"])
        return (out,)


def _conds(family: str):
    g = torch.Generator().manual_seed(1)
    extra = {"pooled_output": torch.randn(1, 64, generator=g)} if family == "sdxl" else {}
    return [[torch.randn(1, 77, CONTEXT[family], generator=g), extra]]


def _model_inputs(model):
    """A clone recording what the network is handed (ComfyUI's UNet function wrapper)."""
    seen = []

    def wrapper(apply_model, args):
        seen.append(args["input"])
        return apply_model(args["input"], args["timestep"], **args["c"])

    clone = model.clone()
    clone.set_model_unet_function_wrapper(wrapper)
    return clone, seen


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_pack_adding_ones_to_samples_acts_on_raw_latents(family, tiny_checkpoint, cpu_manager):
    loaded = load_checkpoint(tiny_checkpoint(family, text=False), cpu_manager, load_clip=False)
    pixels = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    (encoded,) = latent_nodes.VAEEncode().encode(loaded.vae, pixels)
    with torch.no_grad():
        raw = loaded.vae.first_stage_model.encode(pixels.movedim(-1, 1) * 2.0 - 1.0)
    assert torch.equal(encoded["samples"], raw)

    (shifted,) = AddOnes().add(encoded)
    model, seen = _model_inputs(loaded.model)
    sampling_nodes.KSamplerAdvanced().sample(
        model, "disable", 0, 2, 1.0, "euler", "normal", _conds(family), _conds(family), shifted, 0, 2, "disable"
    )
    # No noise added: the network's first input is the pack's latent scaled at the model boundary.
    assert torch.equal(seen[0], (raw + 1.0) * COMFYUI_SCALE[family])

    (decoded,) = latent_nodes.VAEDecode().decode(loaded.vae, shifted)
    with torch.no_grad():
        expected = loaded.vae.first_stage_model.decode(raw + 1.0)
    assert torch.equal(decoded, ((expected + 1.0) / 2.0).clamp(0, 1).movedim(1, -1))


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_saved_latent_files_hold_comfyuis_raw_latents(family, tiny_checkpoint, cpu_manager, services):
    model = load_checkpoint(tiny_checkpoint(family, text=False), cpu_manager, load_clip=False, load_vae=False).model
    target = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    pinned = model.clone()
    # Every guided prediction is `target` (model space); the lcm sampler's last step returns it exactly.
    pinned.set_model_sampler_post_cfg_function(lambda args: target.to(args["denoised"]))
    (latent,) = latent_nodes.EmptyLatentImage().generate(64, 64, 1)
    (sampled,) = sampling_nodes.KSampler().sample(pinned, 0, 2, 3.0, "lcm", "normal", _conds(family), _conds(family), latent, 1.0)
    comfy_raw = target / COMFYUI_SCALE[family]  # ComfyUI's process_latent_out
    assert torch.equal(sampled["samples"], comfy_raw)

    result = latent_nodes.SaveLatent().save(sampled, f"latents/{family}")
    entry = result["ui"]["latents"][0]
    saved = services.paths.output_directory / entry["subfolder"] / entry["filename"]
    with safe_open(str(saved), "pt") as handle:
        assert torch.equal(handle.get_tensor("latent_tensor"), comfy_raw)
        assert handle.get_tensor("latent_format_version_0").numel() == 0
    (services.paths.input_directory / "in.latent").write_bytes(saved.read_bytes())
    (loaded,) = latent_nodes.LoadLatent().load("in.latent")
    assert torch.equal(loaded["samples"], comfy_raw)
