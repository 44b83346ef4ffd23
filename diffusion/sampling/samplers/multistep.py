"""RES multistep, gradient estimation and DEIS: exponential-integrator multistep samplers."""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion.sampling.samplers.common import _guided, _report, _seeded, _setup, get_ancestral_step, to_d
from diffusion.sampling.samplers.sde_solvers import SA_QUADRATURE


def _res_multistep(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, cfg_pp):
    """Second-order multistep exponential integrator (RES, Zhang et al. 2023, arXiv 2308.02157) in
    t = −log σ, stepping to σ_down with fresh noise σ_up when ``eta`` > 0. With ``cfg_pp`` the
    integrator carries the unconditional estimate and starts from the CFG++-shifted x."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    old_sigma_down = old_denoised = None
    for i in range(len(sigmas) - 1):
        if cfg_pp:
            denoised, uncond = _guided(model, x, sigmas[i] * s_in, extra_args)
        else:
            denoised = uncond = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0 or old_denoised is None:
            x = denoised + to_d(x, sigmas[i], uncond) * sigma_down if cfg_pp else \
                x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_old, t_next, t_prev = (-s.log() for s in (sigmas[i], old_sigma_down, sigma_down, sigmas[i - 1]))
            h = t_next - t
            c2 = (t_prev - t_old) / h
            phi1 = (-h).expm1() / -h
            phi2 = (phi1 - 1.0) / -h
            b1 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond)
            x = (-h).exp() * x + h * (b1 * uncond + b2 * old_denoised)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_denoised, old_sigma_down = uncond, sigma_down
    return x


@torch.no_grad()
def sample_res_multistep(model, x, sigmas, extra_args=None, callback=None, s_noise=1.0, noise_sampler=None):
    """RES second-order multistep, deterministic."""
    return _res_multistep(model, x, sigmas, extra_args, callback, 0.0, s_noise, noise_sampler, cfg_pp=False)


@torch.no_grad()
def sample_res_multistep_cfg_pp(model, x, sigmas, extra_args=None, callback=None, s_noise=1.0, noise_sampler=None):
    """RES second-order multistep with CFG++."""
    return _res_multistep(model, x, sigmas, extra_args, callback, 0.0, s_noise, noise_sampler, cfg_pp=True)


@torch.no_grad()
def sample_res_multistep_ancestral(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                                   noise_sampler=None):
    """RES second-order multistep to σ_down, then fresh noise σ_up."""
    return _res_multistep(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, cfg_pp=False)


@torch.no_grad()
def sample_res_multistep_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                                          noise_sampler=None):
    """Ancestral RES multistep with CFG++."""
    return _res_multistep(model, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, cfg_pp=True)


def _gradient_estimation(model, x, sigmas, extra_args, callback, ge_gamma, cfg_pp):
    """Euler plus a correction (γ−1)·(d_i − d_{i−1})·Δσ from the change of the derivative
    (Permenter & Yuan 2024, "Interpreting and improving diffusion models from an optimization
    perspective"); the last step jumps to x0."""
    extra_args, s_in = _setup(x, extra_args)
    old_d = None
    for i in range(len(sigmas) - 1):
        if cfg_pp:
            denoised, uncond = _guided(model, x, sigmas[i] * s_in, extra_args)
        else:
            denoised = uncond = model(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], uncond)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1] if cfg_pp else x + d * dt
            if old_d is not None:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


@torch.no_grad()
def sample_gradient_estimation(model, x, sigmas, extra_args=None, callback=None, ge_gamma=2.0):
    """Gradient-estimation sampler (γ = 2 by default)."""
    return _gradient_estimation(model, x, sigmas, extra_args, callback, ge_gamma, cfg_pp=False)


@torch.no_grad()
def sample_gradient_estimation_cfg_pp(model, x, sigmas, extra_args=None, callback=None, ge_gamma=2.0):
    """Gradient estimation with CFG++ Euler steps."""
    return _gradient_estimation(model, x, sigmas, extra_args, callback, ge_gamma, cfg_pp=True)


# --- DEIS (Zhang & Chen 2023, arXiv 2204.13902), "tab" form ---------------------------------------------

# The VP time axis DEIS interpolates on: the VP-SDE with linear β whose noise levels run from
# σ = 0.002 at t = 1e-3 to σ = 80 at t = 1 (EDM's range, as ComfyUI uses for every model).
DEIS_SIGMA_MIN, DEIS_SIGMA_MAX, DEIS_T_MIN = 0.002, 80.0, 1e-3


def _deis_vp() -> tuple[float, float]:
    """(β_min, β_d) of σ(t)² = exp(β_d t²/2 + β_min t) − 1 through the two anchor points."""
    g_min, g_max = math.log(DEIS_SIGMA_MIN**2 + 1), math.log(DEIS_SIGMA_MAX**2 + 1)
    beta_d = 2 * (g_min / DEIS_T_MIN - g_max) / (DEIS_T_MIN - 1)
    return g_max - beta_d / 2, beta_d


def deis_coefficients(sigmas: list[float], max_order: int) -> list[list[float]]:
    """Per step, the weights of the newest ``order`` derivatives (newest first): the integral over
    σ of their Lagrange basis polynomials in VP time t, C_j = ∫ ℓ_j(t) σ'(t) dt from t_i to t_{i+1}
    (Gauss–Legendre; ComfyUI sums 10 000 points instead, equal to about 1e-4)."""
    beta_min, beta_d = _deis_vp()
    t = [(math.sqrt(beta_min**2 + 2 * beta_d * math.log(s**2 + 1)) - beta_min) / beta_d for s in sigmas]
    nodes, weights = SA_QUADRATURE
    out: list[list[float]] = []
    for i in range(len(sigmas) - 1):
        order = min(i + 1, max_order)
        if order == 1 or sigmas[i + 1] <= 0:
            out.append([])
            continue
        half, mid = (t[i + 1] - t[i]) / 2, (t[i + 1] + t[i]) / 2
        tau = mid + half * nodes
        g = beta_d * tau**2 / 2 + beta_min * tau
        sigma_prime = (beta_d * tau + beta_min) * np.exp(g) / (2 * np.sqrt(np.expm1(g)))
        points = [t[i - k] for k in range(order)]
        row = []
        for j, t_j in enumerate(points):
            basis = np.prod([(tau - t_m) / (t_j - t_m) for m, t_m in enumerate(points) if m != j], axis=0)
            row.append(float((half * weights * sigma_prime * basis).sum()))
        out.append(row)
    return out


@torch.no_grad()
def sample_deis(model, x, sigmas, extra_args=None, callback=None, max_order=3):
    """DEIS multistep: polynomial extrapolation of dx/dσ in VP time, integrated exactly over each
    step; Euler for the first step and the last one to σ = 0."""
    extra_args, s_in = _setup(x, extra_args)
    coefficients = deis_coefficients([float(s) for s in sigmas.double()], max_order)
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        ds = ([to_d(x, sigmas[i], denoised)] + ds)[:max_order]
        if coefficients[i]:
            x = x + sum(c * d for c, d in zip(coefficients[i], ds))
        else:
            x = x + ds[0] * (sigmas[i + 1] - sigmas[i])
    return x


