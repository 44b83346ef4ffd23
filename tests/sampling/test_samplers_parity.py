"""Each sampler against k-diffusion's implementation on the same denoiser, sigmas and noise."""

from __future__ import annotations

import pytest
import torch

from diffusion.sampling import samplers
from diffusion.sampling.model_sampling import scaled_linear_sigmas
from diffusion.sampling.noise import BrownianTreeNoiseSampler
from diffusion.sampling.schedulers import get_sigmas_karras
from tests.sampling.fakes import fake_denoiser
from tests.support.reference_imports import import_k_diffusion

K = import_k_diffusion().sampling
TABLE = scaled_linear_sigmas().float()
TOLERANCE = 1e-5


def _sigmas(n: int = 8, dtype=torch.float64) -> torch.Tensor:
    return get_sigmas_karras(n, float(TABLE[0]), float(TABLE[-1])).to(dtype)


def _start(sigmas: torch.Tensor, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((2, 4, 6, 5), generator=g, dtype=sigmas.dtype) * sigmas[0]


def _gaussian_sequence(x: torch.Tensor, seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=g, dtype=x.dtype)


DETERMINISTIC = ["euler", "heun", "dpm_2", "lms", "dpmpp_2m"]
ANCESTRAL = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral"]
SDE = ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_sampler_matches_k_diffusion(name):
    sigmas = _sigmas()
    x = _start(sigmas)
    ours = samplers.SAMPLERS[name](fake_denoiser, x.clone(), sigmas)
    theirs = getattr(K, f"sample_{name}")(fake_denoiser, x.clone(), sigmas, disable=True)
    assert (ours - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name", ["euler", "heun", "dpm_2"])
def test_churn_matches_k_diffusion_when_fed_the_same_noise(name):
    sigmas = _sigmas()
    x = _start(sigmas)
    torch.manual_seed(11)  # k-diffusion draws churn noise from the global generator every step
    theirs = getattr(K, f"sample_{name}")(fake_denoiser, x.clone(), sigmas, disable=True, s_churn=1.0)
    torch.manual_seed(11)
    ours = samplers.SAMPLERS[name](
        fake_denoiser, x.clone(), sigmas, s_churn=1.0,
        noise_sampler=lambda s, sn: torch.randn_like(x),
    )
    # k-diffusion draws one noise tensor per step even when unused; with churn on every step draws.
    assert (ours - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name", ANCESTRAL)
def test_ancestral_sampler_matches_k_diffusion(name):
    sigmas = _sigmas()
    x = _start(sigmas)
    ours = samplers.SAMPLERS[name](fake_denoiser, x.clone(), sigmas, noise_sampler=_gaussian_sequence(x, 5))
    theirs = getattr(K, f"sample_{name}")(
        fake_denoiser, x.clone(), sigmas, disable=True, noise_sampler=_gaussian_sequence(x, 5)
    )
    assert (ours - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name", SDE)
def test_sde_sampler_matches_k_diffusion_with_aligned_brownian_trees(name):
    sigmas = _sigmas().float()
    x = _start(sigmas)
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    # Ours builds its own tree from extra_args["seed"]; k-diffusion gets its tree with that seed.
    ours = samplers.SAMPLERS[name](fake_denoiser, x.clone(), sigmas, extra_args={"seed": 1234})
    theirs = getattr(K, f"sample_{name}")(
        fake_denoiser, x.clone(), sigmas, disable=True,
        noise_sampler=K.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=1234),
    )
    assert (ours - theirs).abs().max() <= TOLERANCE


def test_dpmpp_2m_sde_heun_variant_matches_k_diffusion():
    sigmas = _sigmas()
    x = _start(sigmas)
    ours = samplers.sample_dpmpp_2m_sde(fake_denoiser, x.clone(), sigmas, noise_sampler=_gaussian_sequence(x, 2),
                                        solver_type="heun")
    theirs = K.sample_dpmpp_2m_sde(fake_denoiser, x.clone(), sigmas, disable=True,
                                   noise_sampler=_gaussian_sequence(x, 2), solver_type="heun")
    assert (ours - theirs).abs().max() <= TOLERANCE


def test_brownian_tree_noise_matches_k_diffusion_for_the_same_seed():
    x = torch.zeros(1, 4, 3, 3)
    ours = BrownianTreeNoiseSampler(x, torch.tensor(0.03), torch.tensor(14.6), seed=77)
    theirs = K.BrownianTreeNoiseSampler(x, torch.tensor(0.03), torch.tensor(14.6), seed=77)
    for a, b in [(14.6, 9.0), (9.0, 2.5), (2.5, 0.03)]:
        assert torch.equal(ours(torch.tensor(a), torch.tensor(b)), theirs(torch.tensor(a), torch.tensor(b)))


@pytest.mark.parametrize("steps", [5, 6, 7, 9])
def test_dpm_fast_matches_k_diffusion(steps):
    sigmas = _sigmas(steps)
    x = _start(sigmas)
    ours = samplers.sample_dpm_fast(fake_denoiser, x.clone(), sigmas)
    theirs = K.sample_dpm_fast(fake_denoiser, x.clone(), sigmas[-2], sigmas[0], steps, disable=True)
    assert (ours - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_adaptive_matches_k_diffusion(order):
    sigmas = _sigmas(10)
    x = _start(sigmas)
    ours = samplers.sample_dpm_adaptive(fake_denoiser, x.clone(), sigmas, order=order)
    theirs = K.sample_dpm_adaptive(fake_denoiser, x.clone(), sigmas[-2], sigmas[0], disable=True, order=order)
    assert (ours - theirs).abs().max() <= TOLERANCE


def test_lms_coefficients_match_k_diffusion_quadrature():
    t = _sigmas(12).numpy()
    for i in range(3, 10):
        for j in range(4):
            assert samplers.lms_coefficient(4, t, i, j) == pytest.approx(K.linear_multistep_coeff(4, t, i, j), rel=1e-6)


def test_ddim_is_euler_on_sigma_ode():
    sigmas = _sigmas()
    x = _start(sigmas)
    assert torch.equal(samplers.SAMPLERS["ddim"](fake_denoiser, x.clone(), sigmas),
                       K.sample_euler(fake_denoiser, x.clone(), sigmas, disable=True))


def test_every_sampler_name_is_in_the_table():
    expected = {"euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive",
                "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde", "ddpm", "ddim",
                "lcm", "uni_pc", "uni_pc_bh2", "euler_cfg_pp", "euler_ancestral_cfg_pp", "dpmpp_2s_ancestral_cfg_pp",
                "dpmpp_2m_cfg_pp", "dpmpp_sde_gpu", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
                "dpmpp_3m_sde_gpu", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
                "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde",
                "sa_solver", "sa_solver_pece", "heunpp2", "ipndm", "seeds_2", "seeds_3", "deis"}
    assert expected == set(samplers.SAMPLERS)


@pytest.mark.parametrize("name", SDE)
def test_sde_samplers_prefetch_exactly_the_brownian_increments_they_use(name, monkeypatch):
    computed = []
    original = BrownianTreeNoiseSampler._increment

    def counting(self, sigma, sigma_next):
        computed.append((float(sigma), float(sigma_next)))
        return original(self, sigma, sigma_next)

    monkeypatch.setattr(BrownianTreeNoiseSampler, "_increment", counting)
    sigmas = _sigmas().float()
    samplers.SAMPLERS[name](fake_denoiser, _start(sigmas), sigmas, extra_args={"seed": 3})
    assert len(computed) == len(set(computed))  # each increment once: every call hit the prefetch


def test_prefetched_brownian_increments_equal_on_demand_ones():
    x = torch.zeros(1, 4, 4, 4)
    sigmas = _sigmas(6).float()
    pairs = [(sigmas[i], sigmas[i + 1]) for i in range(5)]
    eager = BrownianTreeNoiseSampler(x, sigmas[-2], sigmas[0], seed=21)
    ahead = BrownianTreeNoiseSampler(x, sigmas[-2], sigmas[0], seed=21)
    ahead.prefetch(pairs)
    for a, b in pairs:
        assert torch.equal(eager(a, b), ahead(a, b))
