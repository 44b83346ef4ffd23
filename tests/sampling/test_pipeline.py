"""The KSampler pipeline on a fake model: noise, schedules, img2img, inpainting, determinism."""

from __future__ import annotations

import pytest
import torch

from diffusion import sampling
from diffusion.sampling.model_sampling import model_sampling_from_config
from diffusion.sampling.noise import MAX_SEED, prepare_noise
from diffusion.sampling.pipeline import ksampler_sigmas, slice_sigmas
from tests.sampling.fakes import FakeModelHandle, FakeSamplingConfig, cond

MS = model_sampling_from_config(FakeSamplingConfig())


def _latent(batch=1, size=8, fill=0.0):
    return {"samples": torch.full((batch, 4, size, size), fill)}


def _run(model=None, latent=None, sampler="euler", scheduler="normal", steps=4, seed=5, cfg=6.0, **kw):
    model = model or FakeModelHandle()
    return sampling.common_ksampler(model, seed, steps, cfg, sampler, scheduler, cond(0.3), cond(-0.2),
                                    latent or _latent(), **kw)["samples"]


def test_initial_noise_is_torch_randn_from_a_seeded_cpu_generator():
    latent = torch.zeros(2, 4, 8, 8)
    expected = torch.randn(latent.shape, generator=torch.Generator("cpu").manual_seed(42))
    assert torch.equal(prepare_noise(latent, 42), expected)


def test_the_full_unsigned_64_bit_seed_range_is_accepted():
    assert prepare_noise(torch.zeros(1, 4, 2, 2), MAX_SEED).shape == (1, 4, 2, 2)
    with pytest.raises(ValueError):
        prepare_noise(torch.zeros(1, 4, 2, 2), MAX_SEED + 1)


def test_batch_index_picks_the_noise_of_that_batch_entry():
    full = prepare_noise(torch.zeros(4, 4, 8, 8), 7)
    picked = prepare_noise(torch.zeros(2, 4, 8, 8), 7, batch_index=[3, 1])
    assert torch.equal(picked, full[[3, 1]])


def test_latent_from_batch_then_sampling_gives_that_batch_entrys_image():
    whole = _run(latent=_latent(batch=3))
    picked = _run(latent={"samples": torch.zeros(1, 4, 8, 8), "batch_index": [2]})
    assert torch.allclose(picked[0], whole[2], atol=1e-6)


def test_txt2img_starts_from_noise_scaled_by_sqrt_one_plus_sigma_max_squared():
    model = FakeModelHandle()
    _run(model, steps=3, seed=9)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(9))
    # c_in·x = x/√(σ²+1) = the noise itself when x = noise·√(1+σ_max²)
    assert torch.allclose(model.calls[0]["x_value"][:1], noise, atol=1e-6)


@pytest.mark.parametrize("name", sampling.SAMPLER_NAMES)
def test_every_sampler_is_deterministic_and_finite(name):
    first, second = _run(sampler=name, steps=3), _run(sampler=name, steps=3)
    assert torch.equal(first, second)
    assert torch.isfinite(first).all()


def test_different_seeds_give_different_results():
    assert not torch.equal(_run(seed=1), _run(seed=2))


def test_denoise_keeps_the_tail_of_a_longer_schedule():
    sigmas = ksampler_sigmas(MS, "karras", "euler", 10, denoise=0.5)
    assert torch.equal(sigmas, sampling.calculate_sigmas(MS, "karras", 20)[-11:])
    assert len(ksampler_sigmas(MS, "normal", "euler", 10, denoise=0.0)) == 0


def test_discarding_samplers_plan_one_more_step_and_drop_the_penultimate_sigma():
    full = sampling.calculate_sigmas(MS, "normal", 6)
    assert torch.equal(ksampler_sigmas(MS, "normal", "dpm_2", 5), torch.cat([full[:-2], full[-1:]]))


def test_img2img_starts_from_the_image_plus_noise_at_the_truncated_sigma():
    image = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    model = FakeModelHandle()
    _run(model, latent={"samples": image}, steps=4, denoise=0.5, seed=11, cfg=1.0)
    sigma0 = ksampler_sigmas(MS, "normal", "euler", 4, 0.5)[0]
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(11))
    # LATENT samples are raw: the model's latent format scales the image at the model boundary
    expected_input = (model.latent_format.process_in(image) + noise * sigma0) / (sigma0**2 + 1) ** 0.5
    assert torch.allclose(model.calls[0]["x_value"], expected_input, atol=1e-5)


def test_denoise_zero_returns_the_input_latent_unchanged():
    image = torch.randn(1, 4, 8, 8)
    assert torch.equal(_run(latent={"samples": image}, denoise=0.0), image)


def test_advanced_two_stage_handoff_equals_one_run_for_a_deterministic_sampler():
    one = _run(steps=8, sampler="euler")
    first = sampling.common_ksampler(FakeModelHandle(), 5, 8, 6.0, "euler", "normal", cond(0.3), cond(-0.2),
                                     _latent(), start_step=0, last_step=4, force_full_denoise=False)
    second = sampling.common_ksampler(FakeModelHandle(), 5, 8, 6.0, "euler", "normal", cond(0.3), cond(-0.2),
                                      first, add_noise=False, start_step=4, last_step=10000, force_full_denoise=True)
    assert torch.allclose(second["samples"], one, atol=1e-5)


def test_leftover_noise_window_ends_above_zero_and_forced_denoise_ends_at_zero():
    sigmas = ksampler_sigmas(MS, "normal", "euler", 10)
    assert slice_sigmas(sigmas, 0, 5, force_full_denoise=False)[-1] > 0
    assert slice_sigmas(sigmas, 0, 5, force_full_denoise=True)[-1] == 0
    assert slice_sigmas(sigmas, 10, None, False) is None


def test_start_beyond_the_schedule_returns_the_latent():
    image = torch.randn(1, 4, 8, 8)
    out = _run(latent={"samples": image}, start_step=50, last_step=10000)
    assert torch.equal(out, image)


def test_noise_mask_keeps_the_original_latent_outside_the_mask():
    image = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, 32:] = 1.0
    out = _run(latent={"samples": image, "noise_mask": mask}, steps=5)
    assert torch.allclose(out[..., :4], image[..., :4], atol=1e-6)
    assert not torch.allclose(out[..., 4:], image[..., 4:], atol=1e-2)


def test_input_latent_dict_is_not_mutated():
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out = sampling.common_ksampler(FakeModelHandle(), 1, 2, 5.0, "euler", "normal", cond(1), cond(0), latent)
    assert torch.count_nonzero(latent["samples"]) == 0 and out is not latent


def test_progress_callback_reports_every_step():
    seen = []
    sampling.common_ksampler(FakeModelHandle(), 1, 5, 5.0, "dpmpp_2m", "karras", cond(1), cond(0), _latent(),
                             callback=lambda step, total, x0: seen.append((step, total, tuple(x0.shape))))
    assert [s for s, _, _ in seen] == [0, 1, 2, 3, 4] and all(t == 5 for _, t, _ in seen)


def test_v_prediction_model_uses_v_parameterisation():
    eps = _run(FakeModelHandle(), steps=3)
    v = _run(FakeModelHandle(sampling_config=FakeSamplingConfig(prediction="v_prediction")), steps=3)
    assert not torch.allclose(eps, v)


def test_unknown_sampler_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown sampler"):
        _run(sampler="nope")


def test_a_latent_from_another_model_family_is_a_clear_error():
    with pytest.raises(ValueError, match="expects"):
        _run(latent={"samples": torch.ones(1, 16, 8, 8)})
