"""NOISE and GUIDER values and SamplerCustomAdvanced: equal to SamplerCustom where they should be,
and each guider's mix equal to its formula on separately predicted x0 estimates."""

from __future__ import annotations

import pytest
import torch

from diffusion.sampling import guiders, samplers
from diffusion.sampling.guidance import CFGDenoiser, prepare_conds
from diffusion.sampling.model_sampling import model_sampling_from_config
from diffusion.sampling.noise import prepare_noise
from nodes import custom_sampling as nodes
from nodes import sampling as sampling_nodes
from tests.sampling.fakes import FakeModelHandle, FakeSamplingConfig, cond

MS = model_sampling_from_config(FakeSamplingConfig())
SHAPE = torch.Size((2, 4, 8, 8))


def _sigmas(model, steps=4):
    return sampling_nodes.BasicScheduler().get_sigmas(model, "karras", steps, 1.0)[0]


def _latent():
    return {"samples": torch.zeros(SHAPE)}


def _advanced(guider, sampler="euler", seed=9, steps=4, latent=None):
    sampler = sampling_nodes.KSamplerSelect().get_sampler(sampler)[0]
    noise = nodes.RandomNoise().get_noise(seed)[0]
    return nodes.SamplerCustomAdvanced().sample(noise, guider, sampler, _sigmas(guider.model_patcher, steps),
                                                latent or _latent())


def test_cfg_guider_with_random_noise_equals_sampler_custom():
    model = FakeModelHandle()
    guider = nodes.CFGGuider().get_guider(model, cond(1.0), cond(0.0), 6.5)[0]
    out, denoised = _advanced(guider, "dpmpp_2m")
    sampler = sampling_nodes.KSamplerSelect().get_sampler("dpmpp_2m")[0]
    ref_out, ref_denoised = sampling_nodes.SamplerCustom().sample(model, True, 9, 6.5, cond(1.0), cond(0.0), sampler,
                                                                  _sigmas(model), _latent())
    assert torch.equal(out["samples"], ref_out["samples"])
    assert torch.equal(denoised["samples"], ref_denoised["samples"])


def test_basic_guider_is_the_conditioning_alone_with_one_model_call_per_step():
    model = FakeModelHandle()
    guider = nodes.BasicGuider().get_guider(model, cond(1.0))[0]
    out, _ = _advanced(guider, steps=3)
    assert len(model.calls) == 3 and all(c["x"][0] == SHAPE[0] for c in model.calls)
    sampler = sampling_nodes.KSamplerSelect().get_sampler("euler")[0]
    reference = sampling_nodes.SamplerCustom().sample(FakeModelHandle(), True, 9, 1.0, cond(1.0), cond(5.0), sampler,
                                                      _sigmas(model, 3), _latent())[0]
    assert torch.equal(out["samples"], reference["samples"])


def test_disable_noise_samples_the_latent_as_it_is():
    model = FakeModelHandle()
    latent = {"samples": torch.randn(SHAPE, generator=torch.Generator().manual_seed(1)) * 3}
    guider = nodes.CFGGuider().get_guider(model, cond(1.0), cond(0.0), 3.0)[0]
    sampler = sampling_nodes.KSamplerSelect().get_sampler("euler")[0]
    sigmas = _sigmas(model)[2:]
    out, _ = nodes.SamplerCustomAdvanced().sample(nodes.DisableNoise().get_noise()[0], guider, sampler, sigmas, latent)
    reference = sampling_nodes.SamplerCustom().sample(model, False, 0, 3.0, cond(1.0), cond(0.0), sampler, sigmas,
                                                      latent)[0]
    assert torch.equal(out["samples"], reference["samples"])


def test_random_noise_is_ksamplers_noise_and_follows_batch_index():
    latent = {"samples": torch.zeros(SHAPE), "batch_index": [3, 1]}
    noise = nodes.RandomNoise().get_noise(77)[0]
    assert noise.seed == 77
    assert torch.equal(noise.generate_noise(latent), prepare_noise(latent["samples"], 77, [3, 1]))
    assert torch.count_nonzero(nodes.DisableNoise().get_noise()[0].generate_noise(latent)) == 0


def test_add_noise_adds_sigma_span_times_noise():
    model = FakeModelHandle()
    latent = {"samples": torch.randn(SHAPE, generator=torch.Generator().manual_seed(2)), "batch_index": [0, 1]}
    sigmas = torch.tensor([7.0, 3.0, 0.5])
    noise = nodes.RandomNoise().get_noise(5)[0]
    (out,) = nodes.AddNoise().add_noise(model, noise, sigmas, latent)
    # raw LATENT samples: the noise is added in the model's scaled space (ComfyUI's process_latent_in/out)
    fmt = model.latent_format
    expected = fmt.process_out(fmt.process_in(latent["samples"]) + prepare_noise(latent["samples"], 5, [0, 1]) * 6.5)
    assert torch.allclose(out["samples"], expected) and out["batch_index"] == [0, 1]
    assert nodes.AddNoise().add_noise(model, noise, torch.zeros(0), latent)[0] is latent


# --- the mixing rules --------------------------------------------------------------------------------


def _prepared(model, *values):
    return [prepare_conds(cond(v), model, MS, SHAPE) for v in values]


def _single(model, chunks, x, sigma):
    """x0 of one conditioning on its own (a cfg-1 CFGDenoiser makes exactly that one prediction)."""
    return CFGDenoiser(model, MS, chunks, [], 1.0)(x, sigma)


X = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4)) * 5
SIGMA = torch.full((2,), 4.0)


@pytest.mark.parametrize("nested", [False, True])
def test_dual_cfg_mixes_two_prompts_against_the_negative(nested):
    model = FakeModelHandle()
    pos, mid, neg = _prepared(model, 1.0, 0.6, 0.0)
    cfg1, cfg2 = 3.0, 5.0
    ours = guiders.DualCFGDenoiser(model, MS, pos, mid, neg, cfg1, cfg2, nested)(X, SIGMA)
    p, m, n = (_single(model, c, X, SIGMA) for c in (pos, mid, neg))
    if nested:
        expected = n + cfg2 * ((m + cfg1 * (p - m)) - n)
    else:
        expected = n + cfg2 * (m - n) + cfg1 * (p - m)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_dual_cfg_at_cfg_one_runs_only_the_first_prompt():
    model = FakeModelHandle()
    pos, mid, neg = _prepared(model, 1.0, 0.6, 0.0)
    ours = guiders.DualCFGDenoiser(model, MS, pos, mid, neg, 1.0, 1.0, False)(X, SIGMA)
    assert len(model.calls) == 1
    assert torch.allclose(ours, _single(model, pos, X, SIGMA), atol=1e-6)


def test_perp_neg_removes_only_the_negative_component_orthogonal_to_the_positive():
    model = FakeModelHandle()
    pos, neg, empty = _prepared(model, 1.0, -0.4, 0.0)
    cfg, neg_scale = 6.0, 0.7
    ours = guiders.PerpNegDenoiser(model, MS, pos, neg, empty, cfg, neg_scale)(X, SIGMA)
    p, n, e = (_single(model, c, X, SIGMA).double() for c in (pos, neg, empty))
    a, b = (p - e).flatten(), (n - e).flatten()
    orthogonal = b - (a @ b) / (a @ a) * a
    assert abs(float(orthogonal @ a)) < 1e-6 * float(a @ a)
    expected = e + cfg * ((p - e) - neg_scale * orthogonal.reshape(p.shape))
    assert torch.allclose(ours.double(), expected, atol=1e-4)


def test_perp_neg_guider_node_runs_through_sampler_custom_advanced():
    model = FakeModelHandle()
    guider = nodes.PerpNegGuider().get_guider(model, cond(1.0), cond(-0.5), cond(0.0), 5.0, 1.0)[0]
    out, _ = _advanced(guider, steps=2)
    assert torch.isfinite(out["samples"]).all() and out["samples"].shape == SHAPE


@pytest.mark.parametrize("nested,uncond_value", [(False, 0.0), (True, 0.6)])
def test_dual_cfg_reports_its_uncond_to_cfg_pp_samplers(nested, uncond_value):
    model = FakeModelHandle()
    pos, mid, neg = _prepared(model, 1.0, 0.6, 0.0)
    sink: dict = {}
    guiders.DualCFGDenoiser(model, MS, pos, mid, neg, 1.0, 1.0, nested)(X, SIGMA, uncond_sink=sink)
    expected = _single(model, _prepared(model, uncond_value)[0], X, SIGMA)
    assert torch.allclose(sink["uncond_denoised"], expected, atol=1e-6)


def test_guider_runs_a_cfg_pp_sampler():
    model = FakeModelHandle()
    guider = nodes.DualCFGGuider().get_guider(model, cond(1.0), cond(0.5), cond(0.0), 2.0, 3.0, "regular")[0]
    out, _ = _advanced(guider, "euler_cfg_pp", steps=2)
    assert torch.isfinite(out["samples"]).all()
    assert samplers.SAMPLERS["euler_cfg_pp"] is samplers.sample_euler_cfg_pp


def test_cfg_guider_applies_the_models_cfg_hook():
    model = FakeModelHandle()
    model.model_options = {"sampler_cfg_function": lambda args: args["cond"]}  # "guidance" = cond noise only
    guided = nodes.CFGGuider().get_guider(model, cond(1.0), cond(0.0), 9.0)[0]
    plain = nodes.BasicGuider().get_guider(FakeModelHandle(), cond(1.0))[0]
    assert torch.allclose(_advanced(guided)[0]["samples"], _advanced(plain)[0]["samples"], atol=1e-5)
