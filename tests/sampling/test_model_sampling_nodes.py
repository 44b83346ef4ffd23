"""ModelSamplingDiscrete / ContinuousEDM / ContinuousV: the patched parameterisation against
diffusers' EDM preconditioning, k-diffusion's VDenoiser and the EDM paper's formulas."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import EDMEulerScheduler

from diffusion.sampling import model_sampling_for
from nodes import model_sampling as nodes
from nodes import sampling as sampling_nodes
from tests.sampling.fakes import FakeModelHandle, cond
from tests.support.reference_imports import import_k_diffusion

X = torch.randn((2, 4, 3, 3), generator=torch.Generator().manual_seed(0)) * 4
SIGMA = torch.tensor([37.0, 0.3])


def _output(x_in: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """A stand-in network: any fixed function of its (scaled) input and timestep."""
    return torch.tanh(x_in) * 0.8 + 0.05 * timestep.reshape(-1, 1, 1, 1)


def _denoised(ms, x, sigma):
    return ms.calculate_denoised(sigma, _output(ms.calculate_input(sigma, x), ms.timestep(sigma)), x)


def test_model_sampling_discrete_switches_prediction_on_a_clone():
    model = FakeModelHandle()
    patched = nodes.ModelSamplingDiscrete().patch(model, "v_prediction", True)[0]
    assert patched.sampling_config.prediction == "v_prediction" and patched.sampling_config.zero_terminal_snr
    assert model.sampling_config.prediction == "eps"


def test_model_sampling_discrete_lcm_keeps_fifty_of_the_thousand_steps():
    ms = model_sampling_for(nodes.ModelSamplingDiscrete().patch(FakeModelHandle(), "lcm", False)[0])
    full = model_sampling_for(FakeModelHandle())
    assert len(ms.sigmas) == 50 and ms.sigma_max == full.sigma_max
    assert torch.equal(ms.sigmas, full.sigmas[19::20])  # timesteps 19, 39, …, 999
    assert ms.timestep(torch.tensor([ms.sigma_max])).item() == 999


@pytest.mark.parametrize("sampling", ["x0", "img_to_img"])
def test_model_sampling_discrete_x0_takes_the_output_as_the_clean_latent(sampling):
    ms = model_sampling_for(nodes.ModelSamplingDiscrete().patch(FakeModelHandle(), sampling, False)[0])
    out = torch.randn_like(X)
    assert torch.equal(ms.calculate_denoised(SIGMA, out, X), out)
    expected_input = X if sampling == "img_to_img" else X / (SIGMA.reshape(-1, 1, 1, 1) ** 2 + 1) ** 0.5
    assert torch.allclose(ms.calculate_input(SIGMA, X), expected_input)


@pytest.mark.parametrize("sampling,sigma_data,prediction_type", [
    ("edm", 0.5, "epsilon"),  # ComfyUI's EDM: + c_out, σ_data 0.5
    ("v_prediction", 1.0, "v_prediction"),
])
def test_continuous_edm_matches_diffusers_edm_preconditioning(sampling, sigma_data, prediction_type):
    patched = nodes.ModelSamplingContinuousEDM().patch(FakeModelHandle(), sampling, 120.0, 0.002)[0]
    ms = model_sampling_for(patched)
    scheduler = EDMEulerScheduler(sigma_min=0.002, sigma_max=120.0, sigma_data=sigma_data,
                                  prediction_type=prediction_type)
    sigma = SIGMA.reshape(-1, 1, 1, 1)
    timestep = scheduler.precondition_noise(SIGMA)
    reference = scheduler.precondition_outputs(X, _output(scheduler.precondition_inputs(X, sigma), timestep), sigma)
    assert torch.allclose(ms.timestep(SIGMA), timestep, rtol=1e-6)
    assert torch.allclose(_denoised(ms, X, SIGMA), reference, rtol=1e-5, atol=1e-5)


def test_continuous_edm_range_is_log_spaced_and_progress_is_linear_in_log_sigma():
    ms = model_sampling_for(nodes.ModelSamplingContinuousEDM().patch(FakeModelHandle(), "eps", 80.0, 0.01)[0])
    assert len(ms.sigmas) == 1000
    assert ms.sigma_min == pytest.approx(0.01, rel=1e-5) and ms.sigma_max == pytest.approx(80.0, rel=1e-5)
    assert torch.allclose(ms.sigmas.log().diff(), torch.full((999,), math.log(8000) / 999), atol=1e-5)
    assert ms.percent_to_sigma(0.25) == pytest.approx(math.exp(math.log(0.01) + 0.75 * math.log(8000)), rel=1e-5)
    assert ms.percent_to_sigma(0.0) > 1e8 and ms.percent_to_sigma(1.0) == 0.0
    assert torch.allclose(ms.sigma(ms.timestep(SIGMA)), SIGMA)


def test_continuous_v_matches_k_diffusion_vdenoiser():
    ms = model_sampling_for(nodes.ModelSamplingContinuousV().patch(FakeModelHandle(), "v_prediction", 500.0, 0.03)[0])
    reference = import_k_diffusion().external.VDenoiser(_output)(X, SIGMA)
    assert torch.allclose(_denoised(ms, X, SIGMA), reference, rtol=1e-5, atol=1e-5)
    assert ms.sigma_max == pytest.approx(500.0, rel=1e-5) and ms.sigma_min == pytest.approx(0.03, rel=1e-5)


def test_ksampler_on_an_edm_patched_model_feeds_the_unet_quarter_log_sigma():
    model = nodes.ModelSamplingContinuousEDM().patch(FakeModelHandle(), "edm", 120.0, 0.002)[0]
    sampling_nodes.KSampler().sample(model, 3, 3, 1.0, "euler", "karras", cond(1.0), cond(0.0),
                                     {"samples": torch.zeros(1, 4, 4, 4)}, 1.0)
    ms = model_sampling_for(model)
    sigmas = sampling_nodes.BasicScheduler().get_sigmas(model, "karras", 3, 1.0)[0]
    assert sigmas[0] == pytest.approx(120.0, rel=1e-4) and sigmas[-2] == pytest.approx(0.002, rel=1e-4)
    seen = torch.stack([c["timestep"][0] for c in model.calls])
    assert torch.allclose(seen, 0.25 * sigmas[:-1].log(), atol=1e-6)
    assert ms.sigma_data == 0.5


@pytest.mark.parametrize("sampling", ["edm_playground_v2.5", "cosmos_rflow"])
def test_continuous_edm_refuses_what_sd_models_cannot_do(sampling):
    with pytest.raises(ValueError, match="not supported"):
        nodes.ModelSamplingContinuousEDM().patch(FakeModelHandle(), sampling, 120.0, 0.002)


def test_model_sampling_discrete_returns_a_continuous_model_to_the_table():
    edm = nodes.ModelSamplingContinuousEDM().patch(FakeModelHandle(), "edm", 120.0, 0.002)[0]
    back = nodes.ModelSamplingDiscrete().patch(edm, "eps", False)[0]
    assert torch.equal(model_sampling_for(back).sigmas, model_sampling_for(FakeModelHandle()).sigmas)
