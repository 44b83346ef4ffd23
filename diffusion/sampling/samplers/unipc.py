"""UniPC (Zhao et al. 2023), the bh1/bh2 variants ComfyUI offers."""

from __future__ import annotations

import math

import torch

from diffusion.sampling.samplers.common import _report, _setup

UNIPC_FINAL_SIGMA = 0.001


def _unipc_update(model_fn, x, denoised_prev, lambda_prev, lambda_t, sigma_prev, sigma_t, order, variant,
                  use_corrector):
    """One UniPC step with data prediction (UniP predictor, optional UniC corrector).

    Written in x = x_vp/α form: the paper's x_t = (σ_t/σ_s)x_s − α_t(e^{−h}−1)x0 − … becomes
    x_t = (σ_t/σ_s)x_s − (e^{−h}−1)x0 − … with σ the noise level of x and λ = −log σ.
    """
    m0, lam0 = denoised_prev[-1], lambda_prev[-1]
    h = lambda_t - lam0
    rks, d1s = [], []
    for k in range(1, order):
        rk = (lambda_prev[-(k + 1)] - lam0) / h
        rks.append(rk)
        d1s.append((denoised_prev[-(k + 1)] - m0) / rk)
    rks.append(1.0)
    hh = -h
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else math.expm1(hh)
    factorial = 1
    rows, b = [], []
    rks_t = torch.tensor(rks, dtype=torch.float64)
    for k in range(1, order + 1):
        rows.append(rks_t ** (k - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    r_mat = torch.stack(rows)
    b_vec = torch.tensor(b, dtype=torch.float64)
    x_t_ = (sigma_t / sigma_prev) * x - h_phi_1 * m0
    x_t = x_t_
    if d1s:
        rhos_p = [0.5] if order == 2 else torch.linalg.solve(r_mat[:-1, :-1], b_vec[:-1]).tolist()
        x_t = x_t_ - b_h * sum(rho * d for rho, d in zip(rhos_p, d1s))
    model_t = None
    if use_corrector:
        rhos_c = [0.5] if order == 1 else torch.linalg.solve(r_mat, b_vec).tolist()
        model_t = model_fn(x_t)
        corr = sum(rho * d for rho, d in zip(rhos_c[:-1], d1s)) if d1s else 0.0
        x_t = x_t_ - b_h * (corr + rhos_c[-1] * (model_t - m0))
    return x_t, model_t


def _sample_unipc(model, x, sigmas, extra_args, callback, variant):
    """Multistep UniPC of order ≤ 3 with lower order for the warm-up and final steps. Like
    ComfyUI it stops at σ = 0.001 instead of 0 (λ must stay finite)."""
    extra_args, s_in = _setup(x, extra_args)
    sigmas = sigmas.clone()
    if sigmas[-1] == 0:
        sigmas[-1] = UNIPC_FINAL_SIGMA
    steps = len(sigmas) - 1
    if steps < 1:
        return x
    order = max(1, min(3, len(sigmas) - 2))
    sig = [float(s) for s in sigmas.double()]
    lam = [-math.log(s) for s in sig]

    def denoise(x_in, i):
        return model(x_in, sigmas[i] * s_in, **extra_args)

    denoised_prev = [denoise(x, 0)]
    lambda_prev = [lam[0]]
    sigma_prev = sig[0]
    for step in range(1, steps + 1):
        step_order = step if step < order else min(order, steps + 1 - step)
        use_corrector = step < steps
        x, model_x = _unipc_update(
            lambda x_in, i=step: denoise(x_in, i), x, denoised_prev, lambda_prev, lam[step], sigma_prev,
            sig[step], step_order, variant, use_corrector,
        )
        _report(callback, x, step - 1, sigmas[step - 1], sigmas[step - 1],
                model_x if model_x is not None else denoised_prev[-1])
        if step < steps:
            denoised_prev = (denoised_prev + [model_x if model_x is not None else denoise(x, step)])[-order:]
            lambda_prev = (lambda_prev + [lam[step]])[-order:]
        sigma_prev = sig[step]
    return x


@torch.no_grad()
def sample_uni_pc(model, x, sigmas, extra_args=None, callback=None):
    """UniPC with the B(h) = h variant (bh1)."""
    return _sample_unipc(model, x, sigmas, extra_args, callback, "bh1")


@torch.no_grad()
def sample_uni_pc_bh2(model, x, sigmas, extra_args=None, callback=None):
    """UniPC with the B(h) = e^h − 1 variant (bh2), better for guided sampling."""
    return _sample_unipc(model, x, sigmas, extra_args, callback, "bh2")


