"""ComfyUI-style hook points (a test pack written as packs write them) against hand-built references.

Each hook is set through the ModelPatcher-style setters on a clone; the reference reproduces the
same change by editing the network's own modules, so equal outputs show the hook runs at
ComfyUI's place with ComfyUI's arguments.
"""

from __future__ import annotations

import pytest
import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.models.attention import attention
from diffusion.sampling.guidance import CFGDenoiser, prepare_conds

SIGMA = torch.tensor([3.0])
CFG = 5.0


@pytest.fixture()
def model(tiny_checkpoint, cpu_manager):
    return load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False).model


def _conds(value: float):
    g = torch.Generator().manual_seed(int(value * 10) + 5)
    return [[torch.randn(1, 77, 32, generator=g) * value, {}]]


def _latent():
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))


def _denoiser(model) -> CFGDenoiser:
    x = _latent()
    ms = model.model_sampling
    pos = prepare_conds(_conds(1.0), model, ms, x.shape)
    neg = prepare_conds(_conds(-0.5), model, ms, x.shape)
    return CFGDenoiser(model, ms, pos, neg, CFG)


def _transformer_blocks(unet):
    return [b for m in unet.modules() if hasattr(m, "transformer_blocks") for b in m.transformer_blocks]


# the test pack ----------------------------------------------------------------------------------
def attn1_patch(n, context, value, extra_options):
    """Self-attention keys from a damped copy of the input, values amplified."""
    return n, context * 0.5, value * 2.0


def attn2_replace(q, k, v, extra_options):
    """Cross-attention with doubled keys (sharper attention)."""
    return attention(q, k * 2.0, v, extra_options["n_heads"])


def output_block_patch(h, hsp, transformer_options):
    if transformer_options["block"] == ("output", 2):
        hsp = hsp * 0.9
    return h, hsp


def unet_wrapper(apply_model, args):
    return apply_model(args["input"] * 0.5, args["timestep"], **args["c"])


def post_cfg(args):
    return args["denoised"] * 0.9 + args["cond_denoised"] * 0.1


# hooks ------------------------------------------------------------------------------------------
def test_attn1_patch_feeds_self_attention_keys_and_values(model):
    patched = model.clone()
    seen = []
    patched.set_model_attn1_patch(lambda n, c, v, extra: seen.append(extra) or attn1_patch(n, c, v, extra))
    with torch.no_grad():
        out = patched.apply_model(_latent(), torch.tensor([500.0]), _conds(1.0)[0][0])
        handles = [
            block.attn1.register_forward_pre_hook(
                lambda module, args: (args[0], args[0] * 0.5, args[0] * 2.0)
            )
            for block in _transformer_blocks(model.diffusion_model)
        ]
        try:
            expected_reference = model.apply_model(_latent(), torch.tensor([500.0]), _conds(1.0)[0][0])
        finally:
            for handle in handles:
                handle.remove()
    assert torch.equal(out, expected_reference)
    assert not torch.equal(out, model.apply_model(_latent(), torch.tensor([500.0]), _conds(1.0)[0][0]))
    first = seen[0]
    assert first["block"] == ("input", 1) and first["block_index"] == 0 and first["transformer_index"] == 0
    assert (first["n_heads"], first["dim_head"]) == (8, 4) and first["original_shape"] == [1, 4, 8, 8]
    assert [e["block"][0] for e in seen].count("output") > 0
    assert sorted({e["transformer_index"] for e in seen}) == list(range(len(seen)))


def test_attn2_replace_at_one_block_gets_projected_qkv(model):
    patched = model.clone()
    patched.set_model_attn2_replace(attn2_replace, "input", 1)
    x, t, context = _latent(), torch.tensor([500.0]), _conds(1.0)[0][0]
    out = patched.apply_model(x, t, context)
    target = model.diffusion_model.input_blocks[1][1].transformer_blocks[0].attn2

    def reference_forward(x, context=None, value=None):
        return target.to_out(attention(target.to_q(x), target.to_k(context) * 2.0, target.to_v(context), target.heads))

    target.forward = reference_forward
    try:
        expected = model.apply_model(x, t, context)
    finally:
        del target.forward
    assert torch.equal(out, expected)
    assert not torch.equal(out, model.apply_model(x, t, context))


def test_output_block_patch_gets_h_and_the_skip(model):
    patched = model.clone()
    patched.set_model_output_block_patch(output_block_patch)
    x, t, context = _latent(), torch.tensor([500.0]), _conds(1.0)[0][0]
    out = patched.apply_model(x, t, context)
    # By hand: output block 2 eats cat([h, skip]) with skip = input block (n − 3)'s output.
    skip_width = _skip_channels(model.diffusion_model)[-3]

    def scale_skip(module, args):
        joined, *rest = args
        split = joined.shape[1] - skip_width
        return (torch.cat([joined[:, :split], joined[:, split:] * 0.9], dim=1), *rest)

    handle = model.diffusion_model.output_blocks[2].register_forward_pre_hook(scale_skip)
    try:
        expected = model.apply_model(x, t, context)
    finally:
        handle.remove()
    assert torch.equal(out, expected)
    assert not torch.equal(out, model.apply_model(x, t, context))


def _skip_channels(unet) -> list[int]:
    x = torch.zeros(1, unet.config.in_channels, 8, 8)
    channels = []
    hooks = [b.register_forward_hook(lambda m, a, out: channels.append(out.shape[1])) for b in unet.input_blocks]
    try:
        unet(x, torch.tensor([1.0]), torch.zeros(1, 77, unet.config.context_dim))
    finally:
        for h in hooks:
            h.remove()
    return channels


def test_unet_function_wrapper_wraps_each_model_call(model):
    patched = model.clone()
    calls = []

    def wrapper(apply_model, args):
        calls.append(args)
        return unet_wrapper(apply_model, args)

    patched.set_model_unet_function_wrapper(wrapper)
    x = _latent()
    out = _denoiser(patched)(x, SIGMA)
    # By hand: the wrapped apply_model is the plain denoiser's model call on x/2.
    assert torch.equal(out, _denoiser(model)(x * 0.5, SIGMA))
    args = calls[0]
    assert set(args) == {"input", "timestep", "c", "cond_or_uncond"} and args["cond_or_uncond"] == [0, 1]
    assert {"c_crossattn", "transformer_options"} <= set(args["c"])
    assert args["c"]["transformer_options"]["cond_or_uncond"] == [0, 1]
    assert torch.equal(args["c"]["transformer_options"]["sigmas"], SIGMA)


def test_post_cfg_function_gets_comfyui_args(model):
    patched = model.clone()
    seen = []
    patched.set_model_sampler_post_cfg_function(lambda args: seen.append(args) or post_cfg(args))
    x = _latent()
    out = _denoiser(patched)(x, SIGMA)
    reference = _denoiser(model)
    cond, uncond = reference.predict([reference.positive, reference.negative], x, SIGMA)
    assert torch.equal(out, (uncond + (cond - uncond) * CFG) * 0.9 + cond * 0.1)
    assert {"denoised", "cond", "uncond", "cond_scale", "model", "uncond_denoised", "cond_denoised", "sigma",
            "model_options", "input"} == set(seen[0])
    assert seen[0]["model"].diffusion_model is model.diffusion_model


def test_cfg_function_replaces_guidance(model):
    patched = model.clone()
    patched.set_model_sampler_cfg_function(lambda cond, uncond, scale: uncond)  # the 3-argument form
    x = _latent()
    reference = _denoiser(model)
    _, uncond = reference.predict([reference.positive, reference.negative], x, SIGMA)
    assert torch.allclose(_denoiser(patched)(x, SIGMA), uncond, atol=1e-6)


def test_clones_do_not_leak_hooks(model):
    a = model.clone()
    a.set_model_attn1_patch(attn1_patch)
    a.set_model_sampler_post_cfg_function(post_cfg)
    b = a.clone()
    b.set_model_output_block_patch(output_block_patch)
    b.set_model_attn2_replace(attn2_replace, "input", 1)
    assert model.model_options == {"transformer_options": {}}
    assert a.model_options["transformer_options"] == {"patches": {"attn1_patch": [attn1_patch]}}
    assert len(b.model_options["transformer_options"]["patches"]) == 2
    x = _latent()
    plain = _denoiser(model)(x, SIGMA)
    _denoiser(b)(x, SIGMA)
    _denoiser(a)(x, SIGMA)
    assert torch.equal(_denoiser(model)(x, SIGMA), plain)


def test_model_exposes_comfyui_attributes(model):
    assert model.model.diffusion_model is model.diffusion_model
    assert model.model.latent_format is model.latent_format
    assert torch.equal(model.get_model_object("model_sampling").sigmas, model.model_sampling.sigmas)
    assert model.get_model_object("diffusion_model.out") is model.diffusion_model.out
    assert model.model_dtype() == torch.float32 and model.load_device == model.offload_device
    assert model.model_size() == sum(p.numel() * 4 for p in model.diffusion_model.parameters())
    raw = torch.randn(1, 4, 2, 2)
    assert torch.equal(model.get_model_object("process_latent_in")(raw), raw * 0.18215)  # ComfyUI's SD1 factor
    assert torch.equal(model.model.process_latent_out(raw), raw / 0.18215)
    assert set(model.model.state_dict()) == set(model.get_key_patches())
    patched = model.clone()
    marker = object()
    patched.add_object_patch("some_object", marker)
    assert patched.get_model_object("some_object") is marker and "some_object" not in model.object_patches


def test_denoise_mask_function_reshapes_the_inpaint_mask_each_step(model):
    from diffusion.sampling.pipeline import Sampler, ksampler_sigmas, run_sampler

    patched = model.clone()
    seen = []
    patched.set_model_denoise_mask_function(
        lambda sigma, mask, extra_options: seen.append(extra_options) or torch.zeros_like(mask)
    )
    latent = _latent()
    sigmas = ksampler_sigmas(model.model_sampling, "normal", "euler", 2)
    args = (sigmas, torch.randn_like(latent), latent, _conds(1.0), _conds(-0.5), CFG)
    kept, _ = run_sampler(patched, Sampler("euler"), *args, denoise_mask=torch.ones(1, 8, 8))
    assert torch.allclose(kept, latent, atol=1e-5)  # the hook's all-zero mask keeps the known latent
    assert len(seen) == 2 and torch.equal(seen[0]["sigmas"], sigmas)
    assert seen[0]["model"].diffusion_model is model.diffusion_model
    painted, _ = run_sampler(model, Sampler("euler"), *args, denoise_mask=torch.ones(1, 8, 8))
    assert not torch.allclose(painted, latent, atol=1e-2)
