"""Sampler* nodes against k-diffusion with the same options, and the CFG++ samplers against the
CFG++ update rules (Chung et al. 2024) written out in σ form."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffusion.sampling import samplers
from diffusion.sampling.model_sampling import scaled_linear_sigmas
from diffusion.sampling.samplers import multistep
from diffusion.sampling.schedulers import get_sigmas_karras
from nodes import samplers as nodes
from tests.sampling.fakes import fake_denoiser
from tests.support.reference_imports import import_k_diffusion


def K():  # noqa: N802 - imported on first use: its torchvision stub must not precede other modules' imports
    return import_k_diffusion().sampling
TABLE = scaled_linear_sigmas().float()
TOLERANCE = 1e-5


def _sigmas(n: int = 7, dtype=torch.float64) -> torch.Tensor:
    return get_sigmas_karras(n, float(TABLE[0]), float(TABLE[-1])).to(dtype)


def _start(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.randn((2, 4, 5, 6), generator=torch.Generator().manual_seed(3), dtype=sigmas.dtype) * sigmas[0]


def _gaussian(x: torch.Tensor, seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=g, dtype=x.dtype)


def _run(sampler, x, sigmas, **kwargs):
    return sampler.function(fake_denoiser, x.clone(), sigmas, **kwargs, **sampler.options)


@pytest.mark.parametrize("node,args,reference,options", [
    (nodes.SamplerEulerAncestral, (0.5, 0.8), "sample_euler_ancestral", {"eta": 0.5, "s_noise": 0.8}),
    (nodes.SamplerDPMPP_2S_Ancestral, (0.7, 1.2), "sample_dpmpp_2s_ancestral", {"eta": 0.7, "s_noise": 1.2}),
])
def test_ancestral_sampler_nodes_match_k_diffusion(node, args, reference, options):
    sigmas = _sigmas()
    x = _start(sigmas)
    (sampler,) = node().get_sampler(*args)
    ours = _run(sampler, x, sigmas, noise_sampler=_gaussian(x))
    theirs = getattr(K(), reference)(fake_denoiser, x.clone(), sigmas, disable=True, noise_sampler=_gaussian(x), **options)
    assert (ours - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("order", [1, 2, 5])
def test_sampler_lms_node_passes_its_order(order):
    sigmas = _sigmas()
    x = _start(sigmas)
    (sampler,) = nodes.SamplerLMS().get_sampler(order)
    theirs = K().sample_lms(fake_denoiser, x.clone(), sigmas, disable=True, order=order)
    assert (_run(sampler, x, sigmas) - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("node,args,reference,options", [
    (nodes.SamplerDPMPP_SDE, (0.7, 0.9, 0.4, "cpu"), "sample_dpmpp_sde", {"eta": 0.7, "s_noise": 0.9, "r": 0.4}),
    (nodes.SamplerDPMPP_2M_SDE, ("heun", 0.6, 1.1, "gpu"), "sample_dpmpp_2m_sde",
     {"eta": 0.6, "s_noise": 1.1, "solver_type": "heun"}),
    (nodes.SamplerDPMPP_3M_SDE, (0.5, 1.0, "cpu"), "sample_dpmpp_3m_sde", {"eta": 0.5, "s_noise": 1.0}),
])
def test_sde_sampler_nodes_match_k_diffusion_on_the_same_brownian_tree(node, args, reference, options):
    sigmas = _sigmas().float()
    x = _start(sigmas)
    (sampler,) = node().get_sampler(*args)
    ours = _run(sampler, x, sigmas, extra_args={"seed": 99})
    tree = K().BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=99)
    theirs = getattr(K(), reference)(fake_denoiser, x.clone(), sigmas, disable=True, noise_sampler=tree, **options)
    assert (ours - theirs).abs().max() <= TOLERANCE


def test_sampler_dpm_adaptative_node_passes_every_option():
    sigmas = _sigmas(10)
    x = _start(sigmas)
    options = {"order": 2, "rtol": 0.1, "atol": 0.01, "h_init": 0.1, "pcoeff": 0.1, "icoeff": 0.9, "dcoeff": 0.05,
               "accept_safety": 0.7, "eta": 0.0, "s_noise": 1.0}
    (sampler,) = nodes.SamplerDPMAdaptative().get_sampler(**options)
    theirs = K().sample_dpm_adaptive(fake_denoiser, x.clone(), sigmas[-2], sigmas[0], disable=True, **options)
    assert (_run(sampler, x, sigmas) - theirs).abs().max() <= TOLERANCE


def test_sampler_lcm_upscale_denoises_enlarges_and_renoises():
    sigmas = _sigmas(4).float()
    x = _start(sigmas).float()
    (sampler,) = nodes.SamplerLCMUpscale().get_sampler(2.0, 2, "bilinear")
    ours = _run(sampler, x, sigmas, extra_args={"seed": 4})
    # Reference: x0, resized by 1.5× then 2× (two upscale steps of linspace(1, 2, 3)), re-noised.
    g = torch.Generator().manual_seed(4)
    ref = x.clone()
    for i, scale in enumerate([1.5, 2.0, None, None]):
        ref = fake_denoiser(ref, sigmas[i] * torch.ones(2))
        if scale is not None:
            ref = F.interpolate(ref, size=(round(5 * scale), round(6 * scale)), mode="bilinear", align_corners=False)
        if sigmas[i + 1] > 0:
            ref = ref + sigmas[i + 1] * torch.randn(ref.shape, generator=g)
    assert ours.shape == (2, 4, 10, 12)
    assert (ours - ref).abs().max() <= TOLERANCE


def test_sampler_euler_cfgpp_node_picks_the_version():
    assert nodes.SamplerEulerCFGpp().get_sampler("regular")[0].function is samplers.sample_euler_cfg_pp
    assert nodes.SamplerEulerCFGpp().get_sampler("alternative")[0].function is samplers.sample_euler_cfg_pp_alternative


# --- CFG++ -------------------------------------------------------------------------------------------


class FakeGuided:
    """A guidance denoiser with analytic cond and uncond x0 that reports uncond like CFGDenoiser."""

    def __init__(self, cfg: float = 3.0):
        self.cfg = cfg

    def parts(self, x, sigma):
        cond = fake_denoiser(x, sigma)
        uncond = 0.7 * fake_denoiser(x * 0.9, sigma) + 0.02
        return uncond + self.cfg * (cond - uncond), uncond

    def __call__(self, x, sigma, uncond_sink=None, **_):
        guided, uncond = self.parts(x, sigma)
        if uncond_sink is not None:
            uncond_sink["uncond_denoised"] = uncond
        return guided


def _ancestral(sigma, sigma_next, eta):
    up = min(float(sigma_next), eta * (float(sigma_next) ** 2 * (float(sigma) ** 2 - float(sigma_next) ** 2)
                                       / float(sigma) ** 2) ** 0.5)
    return (float(sigma_next) ** 2 - up**2) ** 0.5, up


@pytest.mark.parametrize("eta,s_noise", [(0.0, 0.0), (1.0, 1.0), (0.5, 0.7)])
def test_euler_ancestral_cfg_pp_steps_from_the_guided_x0_along_the_unconditional_noise(eta, s_noise):
    sigmas, model = _sigmas(), FakeGuided()
    x = _start(sigmas)
    if eta == 0.0:
        ours = samplers.SAMPLERS["euler_cfg_pp"](model, x.clone(), sigmas)
    else:
        ours = samplers.SAMPLERS["euler_ancestral_cfg_pp"](model, x.clone(), sigmas, eta=eta, s_noise=s_noise,
                                                           noise_sampler=_gaussian(x))
    noise, ref = _gaussian(x), x.clone()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        guided, uncond = model.parts(ref, sigma * torch.ones(2))
        if sigma_next == 0:
            ref = guided
            continue
        down, up = _ancestral(sigma, sigma_next, eta)
        eps_uncond = (ref - uncond) / sigma
        ref = guided + down * eps_uncond
        if eta > 0:
            ref = ref + s_noise * up * noise(sigma, sigma_next)
    assert (ours - ref).abs().max() <= TOLERANCE


def test_dpmpp_2m_cfg_pp_matches_its_sigma_form():
    sigmas, model = _sigmas(), FakeGuided()
    x = _start(sigmas)
    ours = samplers.SAMPLERS["dpmpp_2m_cfg_pp"](model, x.clone(), sigmas)
    ref, old_uncond = x.clone(), None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        guided, uncond = model.parts(ref, sigma * torch.ones(2))
        ratio = sigma_next / sigma  # e^{-h}
        new = guided + ratio * (ref - uncond)
        if old_uncond is not None and sigma_next > 0:
            r = torch.log(sigmas[i - 1] / sigma) / torch.log(sigma / sigma_next)
            new = new + (1 - ratio) / (2 * r) * (guided - old_uncond)
        ref, old_uncond = new, uncond
    assert (ours - ref).abs().max() <= TOLERANCE


def test_dpmpp_2s_ancestral_cfg_pp_matches_its_sigma_form():
    sigmas, model = _sigmas(), FakeGuided()
    x = _start(sigmas)
    ours = samplers.SAMPLERS["dpmpp_2s_ancestral_cfg_pp"](model, x.clone(), sigmas, noise_sampler=_gaussian(x))
    noise, ref = _gaussian(x), x.clone()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        guided, uncond = model.parts(ref, sigma * torch.ones(2))
        down, up = _ancestral(sigma, sigma_next, 1.0)
        if down == 0:
            ref = guided
        else:
            mid = (sigma * down) ** 0.5  # midpoint in log σ
            shifted = ref + guided - uncond
            x_mid = (mid / sigma) * shifted + (1 - mid / sigma) * guided
            guided_mid = model(x_mid, mid * torch.ones(2))
            ref = (down / sigma) * shifted + (1 - down / sigma) * guided_mid
        if sigma_next > 0:
            ref = ref + up * noise(sigma, sigma_next)
    assert (ours - ref).abs().max() <= TOLERANCE


def test_cfg_pp_samplers_refuse_a_denoiser_without_an_unconditional_estimate():
    sigmas = _sigmas()
    with pytest.raises(TypeError, match="CFG\\+\\+"):
        samplers.SAMPLERS["euler_cfg_pp"](fake_denoiser, _start(sigmas), sigmas)


def test_sampler_names_follow_comfyuis_order():
    comfy_order = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
                   "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
                   "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
                   "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde",
                   "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep",
                   "res_multistep_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp",
                   "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver",
                   "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2"]
    ours = list(samplers.SAMPLER_NAMES)
    assert [n for n in comfy_order if n in ours] == ours


def test_dpmpp_2m_sde_heun_name_is_the_heun_solver():
    sigmas = _sigmas().float()
    x = _start(sigmas)
    ours = samplers.SAMPLERS["dpmpp_2m_sde_heun"](fake_denoiser, x.clone(), sigmas, extra_args={"seed": 8})
    tree = K().BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=8)
    theirs = K().sample_dpmpp_2m_sde(fake_denoiser, x.clone(), sigmas, disable=True, noise_sampler=tree,
                                   solver_type="heun")
    assert (ours - theirs).abs().max() <= TOLERANCE


# --- RES multistep, gradient estimation, ER-SDE --------------------------------------------------------


def gaussian_data_denoiser(x, sigma, **_):
    """The exact x0 for unit-Gaussian data: E[x0 | x] = x/(1+σ²). Its probability-flow ODE has
    the closed-form solution x(σ) = x(σ₀)·√((1+σ²)/(1+σ₀²)), so a solver's order can be measured."""
    return x / (1 + sigma.reshape(-1, 1, 1, 1) ** 2)


def _ode_error(name, steps, **options):
    sigmas = torch.linspace(torch.tensor(10.0).log(), torch.tensor(0.1).log(), steps + 1, dtype=torch.float64).exp()
    x = torch.randn((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    out = samplers.SAMPLERS[name](gaussian_data_denoiser, x.clone(), sigmas, **options)
    exact = x * ((1 + 0.1**2) / (1 + 10.0**2)) ** 0.5
    return float((out - exact).abs().max())


def test_res_multistep_converges_at_second_order():
    coarse, fine = _ode_error("res_multistep", 16), _ode_error("res_multistep", 32)
    assert coarse / fine > 3.5  # halving the step divides a second-order error by ~4
    assert _ode_error("euler", 16) / _ode_error("euler", 32) < 2.5  # first order, for contrast


def test_er_sde_ode_stages_raise_the_order():
    ode = {"s_noise": 0.0, "noise_scaler": partial(samplers.reverse_time_sde_noise_scaler, eta=0.0)}
    errors = [_ode_error("er_sde", 16, max_stage=stage, **ode) for stage in (1, 2, 3)]
    assert errors[0] > 3 * errors[1] > 3 * errors[2] > 0


def test_er_sde_first_stage_ode_is_euler():
    sigmas = _sigmas()
    x = _start(sigmas)
    (sampler,) = nodes.SamplerER_SDE().get_sampler("ODE", 1, 1.0, 1.0)
    theirs = K().sample_euler(fake_denoiser, x.clone(), sigmas, disable=True)
    assert (_run(sampler, x, sigmas) - theirs).abs().max() <= TOLERANCE


def test_er_sde_default_first_stage_matches_the_paper_update():
    sigmas = _sigmas()
    x = _start(sigmas)
    ours = samplers.sample_er_sde(fake_denoiser, x.clone(), sigmas, noise_sampler=_gaussian(x), max_stage=1)
    f = lambda lam: lam * (lam**0.3).exp() + 10 * lam  # noqa: E731 - the paper's ER-SDE noise scale
    noise, ref = _gaussian(x), x.clone()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x0 = fake_denoiser(ref, sigma * torch.ones(2))
        if sigma_next == 0:
            ref = x0
            continue
        r = f(sigma_next) / f(sigma)
        ref = r * ref + (1 - r) * x0 + noise(sigma, sigma_next) * (sigma_next**2 - (sigma * r) ** 2).sqrt()
    assert (ours - ref).abs().max() <= TOLERANCE


def test_sampler_er_sde_node_options():
    assert nodes.SamplerER_SDE().get_sampler("ER-SDE", 2, 0.5, 0.8)[0].options == {"s_noise": 0.8, "max_stage": 2}
    rt = nodes.SamplerER_SDE().get_sampler("Reverse-time SDE", 3, 0.5, 0.8)[0].options
    assert rt["s_noise"] == 0.8 and rt["noise_scaler"](torch.tensor(4.0)) == 4.0**1.5
    ode = nodes.SamplerER_SDE().get_sampler("Reverse-time SDE", 3, 0.0, 0.8)[0].options
    assert ode["s_noise"] == 0.0


def test_gradient_estimation_adds_the_derivative_change():
    sigmas, gamma = _sigmas(), 2.5
    x = _start(sigmas)
    ours = samplers.sample_gradient_estimation(fake_denoiser, x.clone(), sigmas, ge_gamma=gamma)
    ref, old_d = x.clone(), None
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x0 = fake_denoiser(ref, sigma * torch.ones(2))
        d = (ref - x0) / sigma
        if sigma_next == 0:
            ref = x0
        else:
            ref = ref + d * (sigma_next - sigma)
            if old_d is not None:
                ref = ref + (gamma - 1) * (d - old_d) * (sigma_next - sigma)
        old_d = d
    assert (ours - ref).abs().max() <= TOLERANCE


class Unguided(FakeGuided):
    """Guidance that changes nothing: the uncond estimate equals the guided one."""

    def parts(self, x, sigma):
        guided = fake_denoiser(x, sigma)
        return guided, guided


@pytest.mark.parametrize("plain,options", [
    ("res_multistep", {}), ("res_multistep_ancestral", {"eta": 0.6}), ("gradient_estimation", {}),
    ("euler", {}), ("euler_ancestral", {"eta": 0.8}), ("dpmpp_2m", {}), ("dpmpp_2s_ancestral", {}),
])
def test_cfg_pp_sampler_without_guidance_is_the_plain_sampler(plain, options):
    sigmas = _sigmas()
    x = _start(sigmas)
    extra = {"noise_sampler": _gaussian(x)} if "eta" in options or "ancestral" in plain else {}
    reference = samplers.SAMPLERS[plain](fake_denoiser, x.clone(), sigmas, **options, **extra)
    extra = {"noise_sampler": _gaussian(x)} if extra else {}
    ours = samplers.SAMPLERS[f"{plain}_cfg_pp"](Unguided(), x.clone(), sigmas, **options, **extra)
    assert (ours - reference).abs().max() <= TOLERANCE


# --- SA-Solver -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, 0.8])
def test_sa_solver_weights_integrate_polynomials_exactly(tau):
    """b_j are the integrals of the Lagrange basis: Σ b_j P(λ_j) equals the weighted integral of any
    polynomial P of lower degree (computed here with scipy's adaptive quadrature)."""
    from scipy.integrate import quad

    points, lambda_s, lambda_t = [-1.3, -0.9, -0.2, 0.4], 0.4, 1.1
    poly = np.polynomial.Polynomial([0.3, -1.2, 0.5, 0.7])  # degree 3: exact for 4 points
    k = 1 + tau**2
    expected, _ = quad(lambda lam: k * math.exp(k * (lam - lambda_t)) * poly(lam), lambda_s, lambda_t)
    b = samplers.sa_solver_coefficients(points, lambda_s, lambda_t, tau)
    assert sum(c * poly(p) for c, p in zip(b, points)) == pytest.approx(expected, rel=1e-10)


def test_sa_solver_first_order_ode_is_euler():
    sigmas = _sigmas()
    x = _start(sigmas)
    ours = samplers.sample_sa_solver(fake_denoiser, x.clone(), sigmas, tau_func=lambda s: 0.0, predictor_order=1,
                                     corrector_order=0)
    theirs = K().sample_euler(fake_denoiser, x.clone(), sigmas, disable=True)
    assert (ours - theirs).abs().max() <= TOLERANCE


@pytest.mark.parametrize("name,options", [
    ("sa_solver", {}), ("sa_solver_pece", {}), ("sa_solver", {"simple_order_2": True, "predictor_order": 2,
                                                              "corrector_order": 2}),
])
def test_sa_solver_ode_is_high_order(name, options):
    """The schedule stops at σ = 0.1, so this also checks the result is the state at the last σ."""
    ode = {"tau_func": lambda s: 0.0, **options}
    coarse, fine = _ode_error(name, 16, **ode), _ode_error(name, 32, **ode)
    assert coarse / fine > 3.5 and fine < _ode_error("res_multistep", 32)


def test_sa_solver_stochastic_steps_are_seeded_and_finite():
    sigmas = _sigmas(10).float()
    x = _start(sigmas).float()
    tau = samplers.sa_solver_tau(5.0, 0.5, 1.0)
    first = samplers.sample_sa_solver(fake_denoiser, x.clone(), sigmas, extra_args={"seed": 3}, tau_func=tau)
    again = samplers.sample_sa_solver(fake_denoiser, x.clone(), sigmas, extra_args={"seed": 3}, tau_func=tau)
    ode = samplers.sample_sa_solver(fake_denoiser, x.clone(), sigmas, extra_args={"seed": 3}, tau_func=lambda s: 0.0)
    assert torch.equal(first, again) and torch.isfinite(first).all() and not torch.allclose(first, ode)


def test_sampler_sa_solver_node_puts_the_sde_interval_on_the_models_schedule():
    from diffusion.sampling import model_sampling_for
    from tests.sampling.fakes import FakeModelHandle

    model = FakeModelHandle()
    (sampler,) = nodes.SamplerSASolver().get_sampler(model, 0.7, 0.2, 0.8, 1.0, 3, 4, False, False)
    ms = model_sampling_for(model)
    tau = sampler.options["tau_func"]
    assert tau(torch.tensor(ms.percent_to_sigma(0.5))) == 0.7
    assert tau(torch.tensor(ms.percent_to_sigma(0.1))) == 0.0 and tau(torch.tensor(ms.percent_to_sigma(0.9))) == 0.0
    assert sampler.name == "sa_solver" and sampler.options["corrector_order"] == 4


# --- SEEDS, iPNDM, Heun++ ----------------------------------------------------------------------------------


def _uniform_ode_error(name, steps, **options):
    """As _ode_error, on σ steps of equal size (what iPNDM's fixed weights assume)."""
    sigmas = torch.linspace(10.0, 0.1, steps + 1, dtype=torch.float64)
    x = torch.randn((1, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    out = samplers.SAMPLERS[name](gaussian_data_denoiser, x.clone(), sigmas, **options)
    return float((out - x * ((1 + 0.1**2) / (1 + 10.0**2)) ** 0.5).abs().max())


@pytest.mark.parametrize("name,least_ratio", [("seeds_2", 3.5), ("seeds_3", 6.5)])
def test_seeds_without_noise_converge_at_their_order(name, least_ratio):
    assert _ode_error(name, 16, eta=0.0) / _ode_error(name, 32, eta=0.0) > least_ratio


def test_ipndm_converges_at_fourth_order_on_equal_steps():
    assert _uniform_ode_error("ipndm", 20) / _uniform_ode_error("ipndm", 40) > 12


@pytest.mark.parametrize("name", ["seeds_2", "seeds_3"])
def test_seeds_noise_has_the_sde_variance_over_a_step(name):
    """With x0 ≡ 0 one step is x·(σ_t/σ_s)e^{−hη} plus noise whose variance over the stages adds
    up to σ_t²(1 − e^{−2hη}) (the exact SDE's), whatever the stage split."""
    sigmas = torch.tensor([5.0, 2.0, 0.0], dtype=torch.float64)
    x = torch.ones((1, 1, 2, 2), dtype=torch.float64)
    draws: list[int] = []

    def unit(sigma, sigma_next):
        draws.append(0)
        return torch.ones_like(x)

    zero = lambda x_, sigma, **_: torch.zeros_like(x_)  # noqa: E731
    eta, h = 0.7, math.log(5.0 / 2.0)
    deterministic = 2.0 / 5.0 * math.exp(-h * eta)
    assert torch.allclose(samplers.SAMPLERS[name](zero, x.clone(), sigmas[:2], eta=0.0), deterministic / math.exp(
        -h * eta) * x)  # η = 0: no noise, plain exponential decay
    samplers.SAMPLERS[name](zero, x.clone(), sigmas[:2], eta=eta, noise_sampler=unit)
    assert len(draws) == (2 if name == "seeds_2" else 3)  # one draw per stage
    # Switch on one stage's draw at a time: the squared coefficients must sum to the SDE's variance.
    variance = 0.0
    for k in range(len(draws)):
        calls: list[int] = []

        def only_k(sigma, sigma_next, k=k):
            calls.append(0)
            return torch.ones_like(x) if len(calls) - 1 == k else torch.zeros_like(x)

        out_k = samplers.SAMPLERS[name](zero, x.clone(), sigmas[:2], eta=eta, noise_sampler=only_k)
        variance += float(((out_k - deterministic * x) / 2.0).flatten()[0]) ** 2
    assert variance == pytest.approx(1 - math.exp(-2 * h * eta), rel=1e-10)


def test_heunpp2_weights_the_look_ahead_derivatives():
    sigmas = _sigmas(5)
    x = _start(sigmas)
    ours = samplers.sample_heunpp2(fake_denoiser, x.clone(), sigmas)

    def d_at(x_, s):
        return (x_ - fake_denoiser(x_, s * torch.ones(2))) / s

    ref, n = x.clone(), len(sigmas) - 1
    for i in range(n):
        s, dt = sigmas[i], sigmas[i + 1] - sigmas[i]
        d = d_at(ref, s)
        if i == n - 1:
            ref = ref + d * dt
        elif i == n - 2:
            d_2 = d_at(ref + d * dt, sigmas[i + 1])
            w = sigmas[i + 1] / (2 * sigmas[0])
            ref = ref + ((1 - w) * d + w * d_2) * dt
        else:
            x_2 = ref + d * dt
            d_2 = d_at(x_2, sigmas[i + 1])
            d_3 = d_at(x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1]), sigmas[i + 2])
            w_2, w_3 = sigmas[i + 1] / (3 * sigmas[0]), sigmas[i + 2] / (3 * sigmas[0])
            ref = ref + ((1 - w_2 - w_3) * d + w_2 * d_2 + w_3 * d_3) * dt
    assert (ours - ref).abs().max() <= TOLERANCE


def test_deis_weights_integrate_polynomials_in_vp_time_over_sigma():
    """Σ_j C_j P(t_j) = ∫ P(t) dσ(t) over the step for P of degree < order (scipy's quad)."""
    from scipy.integrate import quad

    beta_min, beta_d = multistep._deis_vp()
    sigma_of = lambda t: math.sqrt(math.expm1(beta_d * t * t / 2 + beta_min * t))  # noqa: E731
    t_of = lambda s: (math.sqrt(beta_min**2 + 2 * beta_d * math.log(s * s + 1)) - beta_min) / beta_d  # noqa: E731
    sigmas = [14.6, 9.0, 5.0, 2.5, 1.0, 0.0]
    assert sigma_of(t_of(2.5)) == pytest.approx(2.5) and t_of(80.0) == pytest.approx(1.0)
    coefficients = samplers.deis_coefficients(sigmas, 3)
    assert coefficients[0] == [] and coefficients[-1] == []  # Euler first and into σ = 0
    poly = np.polynomial.Polynomial([0.2, -0.7, 1.3])
    for i in (2, 3):
        t = [t_of(s) for s in sigmas]
        h = 1e-6
        expected, _ = quad(lambda tau: poly(tau) * (sigma_of(tau + h) - sigma_of(tau - h)) / (2 * h), t[i], t[i + 1])
        got = sum(c * poly(t[i - k]) for k, c in enumerate(coefficients[i]))
        assert got == pytest.approx(expected, rel=1e-6)


def test_deis_converges_faster_than_second_order():
    assert _ode_error("deis", 16) / _ode_error("deis", 32) > 5
