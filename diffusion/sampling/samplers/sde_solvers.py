"""SDE solvers: ER-SDE, SA-Solver (Xue et al. 2023) and SEEDS (Gonzalez et al. 2023)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from diffusion.sampling.noise import (
    NoiseSampler,
)
from diffusion.sampling.samplers.common import _report, _seeded, _setup

ER_SDE_INTEGRATION_POINTS = 200


def er_sde_noise_scaler(x: torch.Tensor) -> torch.Tensor:
    """ER-SDE's default noise-scale function f(λ) = λ·(e^{λ^0.3} + 10) (Cui et al. 2023)."""
    return x * ((x**0.3).exp() + 10.0)


def reverse_time_sde_noise_scaler(x: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
    """f(λ) = λ^(η+1): ER-SDE becomes the reverse-time SDE of strength η (η = 0: the ODE)."""
    return x ** (eta + 1)


@torch.no_grad()
def sample_er_sde(model, x, sigmas, extra_args=None, callback=None, s_noise=1.0, noise_sampler=None,
                  noise_scaler=None, max_stage=3):
    """Extended reverse-time SDE solver, up to third order (ER-SDE-Solver-3, Cui et al. 2023,
    arXiv 2309.06169), in the VE form our models use: λ = σ, α = 1.

    ``noise_scaler`` f chooses the SDE (the default is the paper's ER-SDE; λ^(η+1) gives the
    reverse-time SDE with strength η, and s_noise 0 with η 0 the ODE). Higher stages integrate
    1/f numerically with a 200-point Riemann sum as the paper's code does.
    """
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    f = noise_scaler or er_sde_noise_scaler
    points = torch.arange(0, ER_SDE_INTEGRATION_POINTS, dtype=sigmas.dtype, device=sigmas.device)
    old_denoised = old_d1 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = sigmas[i], sigmas[i + 1]
            r = f(lam_t) / f(lam_s)
            x = r * x + (1 - r) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                step = -dt / ER_SDE_INTEGRATION_POINTS
                nodes = lam_t + points * step
                scaled = f(nodes)
                d1 = (denoised - old_denoised) / (lam_s - sigmas[i - 1])
                x = x + (dt + (1 / scaled).sum() * step * f(lam_t)) * d1
                if stage >= 3:
                    d2 = (d1 - old_d1) / ((lam_s - sigmas[i - 2]) / 2)
                    x = x + (dt**2 / 2 + ((nodes - lam_s) / scaled).sum() * step * f(lam_t)) * d2
                old_d1 = d1
            if s_noise > 0:
                spread = (lam_t**2 - lam_s**2 * r**2).sqrt().nan_to_num(nan=0.0)
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * spread
        old_denoised = denoised
    return x


# --- SA-Solver (Xue et al. 2023, arXiv 2309.05019) ------------------------------------------------------

SA_QUADRATURE = np.polynomial.legendre.leggauss(16)


def sa_solver_tau(start_sigma: float, end_sigma: float, eta: float = 1.0) -> Callable[[torch.Tensor], float]:
    """SA-Solver's stochasticity τ(σ): ``eta`` inside [end_sigma, start_sigma], 0 (the ODE) outside."""

    def tau(sigma: torch.Tensor) -> float:
        return eta if eta > 0 and start_sigma >= float(sigma) >= end_sigma else 0.0

    return tau


def sa_solver_coefficients(lambdas: list[float], lambda_s: float, lambda_t: float, tau: float) -> list[float]:
    """Stochastic Adams weights b_j = (1+τ²)∫_{λ_s}^{λ_t} e^{(1+τ²)(λ−λ_t)} ℓ_j(λ) dλ (the paper's
    eqs. 15/18 in data prediction with α = 1), ℓ_j the Lagrange basis through ``lambdas``
    (λ = −log σ). 16-point Gauss–Legendre quadrature is exact to rounding for these integrands."""
    k = 1.0 + tau**2
    nodes, weights = SA_QUADRATURE
    half, mid = (lambda_t - lambda_s) / 2, (lambda_t + lambda_s) / 2
    lam = mid + half * nodes
    kernel = k * half * weights * np.exp(k * (lam - lambda_t))
    coefficients = []
    for j, lambda_j in enumerate(lambdas):
        basis = np.ones_like(lam)
        for m, lambda_m in enumerate(lambdas):
            if m != j:
                basis *= (lam - lambda_m) / (lambda_j - lambda_m)
        coefficients.append(float((kernel * basis).sum()))
    return coefficients


def _sa_simple_order_2(lambdas: list[float], lambda_s: float, lambda_t: float, tau: float,
                       corrector: bool) -> list[float]:
    """The paper's simplified two-point weights (appendix D), older point first."""
    k, h = 1.0 + tau**2, lambda_t - lambda_s
    total = -math.expm1(-k * h)
    older = total - 0.5 * k * h if corrector else 0.5 * k * h**2 / (lambdas[0] - lambda_s)
    return [older, total - older]


@torch.no_grad()
def sample_sa_solver(model, x, sigmas, extra_args=None, callback=None, tau_func=None, s_noise=1.0,
                     noise_sampler=None, predictor_order=3, corrector_order=4, use_pece=False, simple_order_2=False):
    """SA-Solver: a stochastic Adams predictor (up to ``predictor_order`` past x0 estimates) and
    corrector (up to ``corrector_order``, including the new one), with SDE noise of strength τ(σ).

    Without ``tau_func`` τ = 1 between 20 % and 80 % of the model's schedule (needs
    ``extra_args["model_sampling"]``, which the pipeline passes), else the ODE.
    """
    if len(sigmas) <= 1:
        return x
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    if tau_func is None:
        ms = extra_args.get("model_sampling")
        tau_func = sa_solver_tau(ms.percent_to_sigma(0.2), ms.percent_to_sigma(0.8)) if ms else (lambda s: 0.0)
    sig = [float(v) for v in sigmas.double()]
    lam = [-math.log(v) if v > 0 else math.inf for v in sig]
    weights = _sa_simple_order_2 if simple_order_2 else None
    x_pred, h, tau, noise = x, 0.0, 0.0, None
    history: list[torch.Tensor] = []
    to_end = sig[-1] == 0  # lower the orders over the last steps, for stability
    for i in range(len(sig) - 1):
        denoised = model(x_pred, sigmas[i] * s_in, **extra_args)
        _report(callback, x_pred, i, sigmas[i], sigmas[i], denoised)
        history = (history + [denoised])[-max(predictor_order, corrector_order):]
        p_order = min(predictor_order, len(history))
        c_order = 0 if i == 0 or (sig[i + 1] == 0 and not use_pece) else min(corrector_order, len(history))
        if to_end:
            p_order, c_order = min(p_order, len(sig) - 2 - i), min(c_order, len(sig) - 1 - i)
        if c_order == 0:
            x = x_pred
        else:
            points = lam[i - c_order + 1 : i + 1]
            if weights is not None and c_order == 2:
                b = weights(points, lam[i - 1], lam[i], tau, corrector=True)
            else:
                b = sa_solver_coefficients(points, lam[i - 1], lam[i], tau)
            x = sig[i] / sig[i - 1] * math.exp(-(tau**2) * h) * x + sum(c * d for c, d in zip(b, history[-c_order:]))
            if noise is not None:
                x = x + noise
            if use_pece:
                denoised = model(x, sigmas[i] * s_in, **extra_args)
                history[-1] = denoised
        if sig[i + 1] == 0:
            x = denoised
            continue
        tau = tau_func(sigmas[i + 1])
        points = lam[i - p_order + 1 : i + 1]
        if weights is not None and p_order == 2:
            b = weights(points, lam[i], lam[i + 1], tau, corrector=False)
        else:
            b = sa_solver_coefficients(points, lam[i], lam[i + 1], tau)
        h = lam[i + 1] - lam[i]
        x_pred = sig[i + 1] / sig[i] * math.exp(-(tau**2) * h) * x + sum(c * d for c, d in zip(b, history[-p_order:]))
        noise = None
        if tau > 0 and s_noise > 0:
            spread = sig[i + 1] * math.sqrt(-math.expm1(-2 * tau**2 * h)) * s_noise
            noise = noise_sampler(sigmas[i], sigmas[i + 1]) * spread
            x_pred = x_pred + noise
    # A schedule that stops above 0 (SplitSigmas' high half) ends at its last σ: the prediction.
    # (ComfyUI returns the previous step's corrected state there, one σ too noisy.)
    return x_pred if sig[-1] > 0 else x


@torch.no_grad()
def sample_sa_solver_pece(model, x, sigmas, extra_args=None, callback=None, tau_func=None, s_noise=1.0,
                          noise_sampler=None, predictor_order=3, corrector_order=4, simple_order_2=False):
    """SA-Solver in PECE mode: the corrected state is evaluated again before the next prediction."""
    return sample_sa_solver(model, x, sigmas, extra_args, callback, tau_func, s_noise, noise_sampler,
                            predictor_order, corrector_order, use_pece=True, simple_order_2=simple_order_2)


# --- SEEDS (Gonzalez et al. 2023, arXiv 2305.14267), iPNDM, Heun++ ------------------------------------------


def _h_phi_1(h: torch.Tensor) -> torch.Tensor:
    """h·φ₁(h) = e^h − 1 of exponential integrators."""
    return torch.expm1(h)


def _h_phi_2(h: torch.Tensor) -> torch.Tensor:
    """h·φ₂(h) = (e^h − 1 − h)/h."""
    return (torch.expm1(h) - h) / h


class _SeedsNoise:
    """One Brownian path sampled at the stages of a SEEDS step: each segment decays the noise so
    far by e^{Δ·η} and adds fresh noise of the matching variance."""

    def __init__(self, noise_sampler: NoiseSampler, h_eta: torch.Tensor) -> None:
        self.noise_sampler, self.h_eta, self.noise = noise_sampler, h_eta, None

    def advance(self, r_from: float, r_to: float, sigma_from, sigma_to) -> torch.Tensor:
        decay = (r_from - r_to) * self.h_eta
        fresh = (2 * decay).expm1().neg().sqrt() * self.noise_sampler(sigma_from, sigma_to)
        self.noise = fresh if self.noise is None else self.noise * decay.exp() + fresh
        return self.noise


def _seeds_sub_step(x, denoised_mix, sigma, sigma_to, r, h, eta):
    """x at λ_s + r·h from x at σ with data estimate ``denoised_mix`` (VE data prediction)."""
    return sigma_to / sigma * (-r * h * eta).exp() * x - denoised_mix


@torch.no_grad()
def sample_seeds_2(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0, noise_sampler=None,
                   r=0.5):
    """SEEDS-2: two-stage stochastic exponential solver in data prediction (λ = −log σ); the
    intermediate stage at λ_s + r·h. η = 0 gives the deterministic second-order solver."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        h = sigma.log() - sigma_next.log()
        h_eta = h * (eta + 1)
        sigma_1 = (sigma.log() - r * h).exp()
        noise = _SeedsNoise(noise_sampler, h * eta)
        x_2 = _seeds_sub_step(x, _h_phi_1(-r * h_eta) * denoised, sigma, sigma_1, r, h, eta)
        if inject:
            x_2 = x_2 + noise.advance(0.0, r, sigma, sigma_1) * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)
        mix = torch.lerp(denoised, denoised_2, 1 / (2 * r))
        x = _seeds_sub_step(x, _h_phi_1(-h_eta) * mix, sigma, sigma_next, 1.0, h, eta)
        if inject:
            x = x + noise.advance(r, 1.0, sigma_1, sigma_next) * sigma_next * s_noise
    return x


@torch.no_grad()
def sample_seeds_3(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0, noise_sampler=None,
                   r_1=1.0 / 3, r_2=2.0 / 3):
    """SEEDS-3: three-stage stochastic exponential solver (stages at r_1 and r_2 of each step)."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        h = sigma.log() - sigma_next.log()
        h_eta = h * (eta + 1)
        sigma_1, sigma_2 = (sigma.log() - r_1 * h).exp(), (sigma.log() - r_2 * h).exp()
        noise = _SeedsNoise(noise_sampler, h * eta)
        x_2 = _seeds_sub_step(x, _h_phi_1(-r_1 * h_eta) * denoised, sigma, sigma_1, r_1, h, eta)
        if inject:
            x_2 = x_2 + noise.advance(0.0, r_1, sigma, sigma_1) * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)
        a_2 = r_2 / r_1 * _h_phi_2(-r_2 * h_eta)
        a_1 = _h_phi_1(-r_2 * h_eta) - a_2
        x_3 = _seeds_sub_step(x, a_1 * denoised + a_2 * denoised_2, sigma, sigma_2, r_2, h, eta)
        if inject:
            x_3 = x_3 + noise.advance(r_1, r_2, sigma_1, sigma_2) * sigma_2 * s_noise
        denoised_3 = model(x_3, sigma_2 * s_in, **extra_args)
        b_3 = _h_phi_2(-h_eta) / r_2
        b_1 = _h_phi_1(-h_eta) - b_3
        x = _seeds_sub_step(x, b_1 * denoised + b_3 * denoised_3, sigma, sigma_next, 1.0, h, eta)
        if inject:
            x = x + noise.advance(r_2, 1.0, sigma_2, sigma_next) * sigma_next * s_noise
    return x


