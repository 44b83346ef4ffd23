"""The SD noise table, timestep mapping, parameterisations and schedules against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as diffusers_zero_snr

from diffusion.sampling import model_sampling as msmod
from diffusion.sampling import schedulers
from tests.sampling.fakes import FakeSamplingConfig
from tests.support.reference_imports import import_k_diffusion

KD = import_k_diffusion()


def _alphas_cumprod_f64() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


class _Inner:
    """What CompVisDenoiser needs: alphas_cumprod and apply_model(x, t, cond)."""

    def __init__(self, alphas_cumprod):
        self.alphas_cumprod = alphas_cumprod
        self.seen_t = None

    def apply_model(self, x, t, cond=None):
        self.seen_t = t
        return torch.tanh(x) * 0.3 + 0.01 * t.reshape(-1, 1, 1, 1)


MS = msmod.model_sampling_from_config(FakeSamplingConfig())
K_SCHEDULE = KD.external.DiscreteSchedule(MS.sigmas, quantize=True)


def test_table_matches_diffusers_scaled_linear_alphas():
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    ac = scheduler.alphas_cumprod.double()
    reference = ((1 - ac) / ac) ** 0.5
    assert torch.allclose(msmod.scaled_linear_sigmas(), reference, rtol=5e-5)  # diffusers cumprods in float32
    assert len(MS.sigmas) == 1000 and MS.sigmas.dtype == torch.float32


def test_table_is_computed_in_float64():
    ac = _alphas_cumprod_f64()
    assert torch.equal(msmod.scaled_linear_sigmas(), ((1 - ac) / ac) ** 0.5)


def test_zero_terminal_snr_matches_diffusers_rescale_except_the_last_step():
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    reference_ac = torch.cumprod(1 - diffusers_zero_snr(betas), 0)
    ours = msmod.scaled_linear_sigmas(zero_terminal_snr=True)
    ours_ac = 1 / (ours**2 + 1)
    assert torch.allclose(ours_ac[:-1], reference_ac[:-1], rtol=1e-9, atol=1e-12)
    assert ours_ac[-1] == pytest.approx(msmod.ZERO_SNR_LAST_ALPHA_BAR)  # finite σ_max, near-zero SNR


def test_timesteps_are_rounded_like_quantized_k_diffusion():
    sigmas = torch.tensor([14.6, 7.3, 1.01, 0.5, 0.0292, 3.333])
    assert torch.equal(MS.timestep(sigmas), K_SCHEDULE.sigma_to_t(sigmas, quantize=True))


def test_sigma_of_fractional_timestep_interpolates_log_sigma_like_k_diffusion():
    t = torch.tensor([0.0, 10.5, 500.25, 998.9, 999.0])
    assert torch.allclose(MS.sigma(t), K_SCHEDULE.t_to_sigma(t), rtol=1e-6)


@pytest.mark.parametrize("prediction,wrapper", [("eps", "CompVisDenoiser"), ("v_prediction", "CompVisVDenoiser")])
def test_denoised_matches_k_diffusion_wrappers(prediction, wrapper):
    inner = _Inner(MS.sigmas.new_tensor(1 / (MS.sigmas.double() ** 2 + 1)))
    reference = getattr(KD.external, wrapper)(inner, quantize=True)
    ms = msmod.model_sampling_from_config(FakeSamplingConfig(prediction=prediction))
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * 3
    sigma = torch.tensor([5.0, 0.7])
    expected = reference(x, sigma, cond=None)
    t = ms.timestep(sigma)
    out = inner.apply_model(ms.calculate_input(sigma, x), t.float())
    assert torch.equal(t, inner.seen_t.long()) or torch.equal(t.float(), inner.seen_t.float())
    assert torch.allclose(ms.calculate_denoised(sigma, out, x), expected, atol=1e-5)


def test_percent_to_sigma_follows_comfyui_semantics():
    assert MS.percent_to_sigma(0.0) > 1e8 and MS.percent_to_sigma(1.0) == 0.0
    assert MS.percent_to_sigma(0.5) == pytest.approx(float(MS.sigma(torch.tensor(499.5))))


def test_lcm_sampling_keeps_every_20th_step():
    ms = msmod.model_sampling_from_config(FakeSamplingConfig(prediction="lcm"))
    assert len(ms.sigmas) == 50
    assert ms.sigmas[-1] == MS.sigmas[-1] and ms.sigmas[0] == MS.sigmas[19]
    assert int(ms.timestep(torch.tensor([float(MS.sigmas[999])]))) == 999


def test_unknown_prediction_is_a_clear_error():
    with pytest.raises(ValueError, match="prediction"):
        msmod.model_sampling_from_config(FakeSamplingConfig(prediction="flow"))


@pytest.mark.parametrize("steps", [1, 4, 20])
def test_karras_and_exponential_match_k_diffusion(steps):
    s = KD.sampling
    assert torch.equal(schedulers.SCHEDULERS["karras"](MS, steps), s.get_sigmas_karras(steps, MS.sigma_min, MS.sigma_max))
    assert torch.allclose(schedulers.SCHEDULERS["exponential"](MS, steps),
                          s.get_sigmas_exponential(steps, MS.sigma_min, MS.sigma_max))


@pytest.mark.parametrize("steps", [2, 10, 25])
def test_normal_matches_k_diffusion_discrete_schedule(steps):
    assert torch.allclose(schedulers.SCHEDULERS["normal"](MS, steps), K_SCHEDULE.get_sigmas(steps), rtol=1e-6)


@pytest.mark.parametrize("steps", [3, 10])
def test_sgm_uniform_spaces_steps_plus_one_timesteps_and_drops_the_last(steps):
    t = torch.linspace(999, 0, steps + 1)[:-1]
    expected = KD.sampling.append_zero(K_SCHEDULE.t_to_sigma(t))
    assert torch.allclose(schedulers.SCHEDULERS["sgm_uniform"](MS, steps), expected, rtol=1e-6)


@pytest.mark.parametrize("steps", [10, 20, 25, 50])
def test_simple_uses_diffusers_trailing_timesteps(steps):
    reference = DDIMScheduler(timestep_spacing="trailing")
    reference.set_timesteps(steps)
    expected = torch.cat([MS.sigmas[reference.timesteps.long()], torch.zeros(1)])
    assert torch.equal(schedulers.SCHEDULERS["simple"](MS, steps), expected)


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_ddim_uniform_uses_diffusers_leading_timesteps_with_offset(steps):
    reference = DDIMScheduler(timestep_spacing="leading", steps_offset=1)
    reference.set_timesteps(steps)
    expected = torch.cat([MS.sigmas[reference.timesteps.long()], torch.zeros(1)])
    assert torch.equal(schedulers.SCHEDULERS["ddim_uniform"](MS, steps), expected)


def test_beta_schedule_places_timesteps_at_beta_quantiles():
    from scipy import stats

    sigmas = schedulers.SCHEDULERS["beta"](MS, 10)
    t = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, 10, endpoint=False), 0.6, 0.6) * 999).astype(int)
    assert torch.equal(sigmas[:-1], MS.sigmas[torch.tensor(t)])
    gaps = torch.diff(torch.tensor(t, dtype=torch.float32)).abs()
    assert gaps[0] < gaps[len(gaps) // 2] and gaps[-1] < gaps[len(gaps) // 2]  # denser at both ends


@pytest.mark.parametrize("name", list(schedulers.SCHEDULERS))
@pytest.mark.parametrize("steps", [1, 7, 30])
def test_every_schedule_descends_from_sigma_max_to_zero(name, steps):
    sigmas = schedulers.calculate_sigmas(MS, name, steps)
    assert sigmas[-1] == 0 and sigmas.dtype == torch.float32
    assert torch.all(sigmas[:-1] > sigmas[1:])
    if name != "ddim_uniform":  # DDIM's uniform timesteps start at 1 + k·stride, below 999
        assert sigmas[0] == pytest.approx(MS.sigma_max, rel=1e-5)
    assert len(sigmas) >= steps + 1 - (1 if name == "beta" else 0)


def test_unknown_scheduler_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown scheduler"):
        schedulers.calculate_sigmas(MS, "nope", 10)


def test_kl_optimal_is_evenly_spaced_in_arctan_sigma():
    sigmas = schedulers.SCHEDULERS["kl_optimal"](MS, 9)
    angles = torch.atan(sigmas[:-1].double())
    assert torch.allclose(torch.diff(angles), torch.diff(angles)[:1].expand(8), atol=1e-6)
    assert sigmas[0] == pytest.approx(MS.sigma_max, rel=1e-5) and sigmas[-2] == pytest.approx(MS.sigma_min, rel=1e-5)
