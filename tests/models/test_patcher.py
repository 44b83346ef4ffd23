"""ModelHandle: cheap clones sharing weights, patches merged and restored, SDXL adm vector, I/O types."""

from __future__ import annotations

import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.models.blocks import timestep_embedding
from diffusion.patcher import SamplingConfig
from engine.sizing import value_nbytes


def _inputs(context_dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, 4, 8, 8, generator=g),
        torch.tensor([400.0]),
        torch.randn(1, 77, context_dim, generator=g),
    )


def test_clone_shares_the_network_and_copies_settings(tiny_checkpoint, cpu_manager):
    model = load_checkpoint(
        tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    twin = model.with_sampling_config(prediction="v_prediction")
    assert twin.is_clone(model) and twin.diffusion_model is model.diffusion_model
    assert model.sampling_config == SamplingConfig()  # the original is untouched
    assert twin.sampling_config.prediction == "v_prediction"
    assert twin.cache_size_bytes() == model.cache_size_bytes() > 0
    # the output cache counts the network once for both handles
    assert value_nbytes([model, twin]) < model.cache_size_bytes() + 200


def test_patches_apply_to_the_clone_only_and_restore_exactly(tiny_checkpoint, cpu_manager):
    model = load_checkpoint(
        tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    x, t, context = _inputs()
    before = model.apply_model(x, t, context)
    name = "input_blocks.1.1.transformer_blocks.0.attn2.to_v.weight"
    parameter = model.diffusion_model.get_parameter(name)
    original = parameter.data
    snapshot = original.clone()
    patched = model.clone()
    key = "diffusion_model." + name
    accepted = patched.add_patches({key: (torch.ones_like(original),), "not.a.key": (torch.ones(1),)}, 0.5)
    assert accepted == [key] and model.patches == {}
    after = patched.apply_model(x, t, context)
    assert (after - before).abs().max() > 1e-3
    assert torch.allclose(parameter.data, snapshot + 0.5)
    assert torch.equal(original, snapshot)  # the original tensor itself is never written to
    again = model.apply_model(x, t, context)  # the unpatched handle restores the original
    assert parameter.data_ptr() == original.data_ptr() and torch.equal(again, before)


def test_apply_model_returns_input_dtype_and_device(tiny_checkpoint, cpu_manager):
    model = load_checkpoint(
        tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    x, t, context = _inputs()
    out = model.apply_model(x.double(), t, context)
    assert out.dtype == torch.float64 and out.shape == x.shape


def test_inpaint_model_without_concat_means_inpaint_everything(tiny_checkpoint, cpu_manager):
    model = load_checkpoint(
        tiny_checkpoint("sd1-inpaint", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    x, t, context = _inputs()
    implicit = model.apply_model(x, t, context)
    explicit = model.apply_model(
        x, t, context, concat=torch.cat([torch.ones(1, 1, 8, 8), torch.zeros(1, 4, 8, 8)], 1)
    )
    assert torch.equal(implicit, explicit)


def test_sdxl_adm_uses_comfyui_keys_and_defaults(tiny_checkpoint, cpu_manager):
    model = load_checkpoint(
        tiny_checkpoint("sdxl", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    pooled = torch.randn(1, 64)
    y = model.encode_adm({"pooled_output": pooled, "width": 1024, "height": 768}, batch=2)
    assert y.shape == (2, 64 + 6 * 256)
    assert torch.equal(y[0, :64], pooled[0])
    sizes = timestep_embedding(torch.tensor([768.0, 1024.0, 0.0, 0.0, 768.0, 1024.0]), 256).reshape(-1)
    assert torch.allclose(y[1, 64:], sizes)
    defaults = model.encode_adm({"pooled_output": pooled}, batch=1)
    assert torch.allclose(defaults[0, 64:320], timestep_embedding(torch.tensor([768.0]), 256)[0])


def test_refiner_adm_has_aesthetic_score_and_sd1_has_none(tiny_checkpoint, cpu_manager):
    refiner = load_checkpoint(
        tiny_checkpoint("sdxl-refiner", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    y = refiner.encode_adm({"pooled_output": torch.zeros(1, 64), "aesthetic_score": 2.5}, batch=1)
    assert y.shape == (1, 64 + 5 * 256)
    assert torch.allclose(y[0, -256:], timestep_embedding(torch.tensor([2.5]), 256)[0])
    sd1 = load_checkpoint(
        tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False
    ).model
    assert sd1.encode_adm({}, batch=1) is None
