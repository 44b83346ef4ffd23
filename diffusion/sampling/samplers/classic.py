"""First-order, Heun-type and linear multistep samplers (Karras et al. 2022), DDPM, LCM, iPNDM."""

from __future__ import annotations

import numpy as np
import torch

from diffusion.latent_ops import resize_samples
from diffusion.sampling.noise import (
    cpu_generator,
)
from diffusion.sampling.samplers.common import (
    _churn,
    _lazy_noise,
    _report,
    _seeded,
    _setup,
    get_ancestral_step,
    to_d,
)


@torch.no_grad()
def sample_euler(model, x, sigmas, extra_args=None, callback=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0, noise_sampler=None):
    """Euler steps on the probability-flow ODE (Karras et al. 2022, Alg. 2 with Euler)."""
    extra_args, s_in = _setup(x, extra_args)
    noise = _lazy_noise(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                           noise_sampler=None):
    """Euler step to σ_down, then fresh noise σ_up (ancestral sampling)."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_heun(model, x, sigmas, extra_args=None, callback=None, s_churn=0.0, s_tmin=0.0,
                s_tmax=float("inf"), s_noise=1.0, noise_sampler=None):
    """Heun's second-order method (Karras et al. 2022, Alg. 2); Euler for the last step to 0."""
    extra_args, s_in = _setup(x, extra_args)
    noise = _lazy_noise(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        denoised_2 = model(x_2, sigmas[i + 1] * s_in, **extra_args)
        d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
        x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, extra_args=None, callback=None, s_churn=0.0, s_tmin=0.0,
                 s_tmax=float("inf"), s_noise=1.0, noise_sampler=None):
    """Midpoint method with the midpoint taken in log σ (DPM-Solver-2 flavour)."""
    extra_args, s_in = _setup(x, extra_args)
    noise = _lazy_noise(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
            continue
        sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigma_hat)
        denoised_2 = model(x_2, sigma_mid * s_in, **extra_args)
        x = x + to_d(x_2, sigma_mid, denoised_2) * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                           noise_sampler=None):
    """dpm_2 down to σ_down, then fresh noise σ_up."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
            continue
        sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigmas[i])
        denoised_2 = model(x_2, sigma_mid * s_in, **extra_args)
        x = x + to_d(x_2, sigma_mid, denoised_2) * (sigma_down - sigmas[i])
        x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


# --- linear multistep --------------------------------------------------------------------------


def lms_coefficient(order: int, t: np.ndarray, i: int, j: int) -> float:
    """∫_{t_i}^{t_{i+1}} of the Lagrange basis polynomial through t_i, …, t_{i-order+1}
    for node t_{i-j}, integrated exactly (it is a polynomial)."""
    if order - 1 > i:
        raise ValueError(f"order {order} too high for step {i}")
    roots = [t[i - k] for k in range(order) if k != j]
    denominator = float(np.prod([t[i - j] - r for r in roots])) if roots else 1.0
    antiderivative = np.polyint(np.poly(roots) if roots else np.array([1.0]))
    return float((np.polyval(antiderivative, t[i + 1]) - np.polyval(antiderivative, t[i])) / denominator)


@torch.no_grad()
def sample_lms(model, x, sigmas, extra_args=None, callback=None, order=4):
    """Linear multistep (Adams–Bashforth in σ) using up to ``order`` past derivatives."""
    extra_args, s_in = _setup(x, extra_args)
    t = sigmas.detach().cpu().double().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        cur_order = min(i + 1, order)
        coeffs = [lms_coefficient(cur_order, t, i, j) for j in range(cur_order)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


# --- DDPM, LCM ---------------------------------------------------------------------------------


@torch.no_grad()
def sample_ddpm(model, x, sigmas, extra_args=None, callback=None, noise_sampler=None):
    """Ancestral DDPM steps (Ho et al. 2020): posterior mean plus noise of the posterior variance,
    computed in the variance-preserving space and mapped back to x = x_vp·√(1+σ²)."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        eps = (x - denoised) / sigma
        alpha_bar = 1 / (sigma * sigma + 1)
        alpha_bar_next = 1 / (sigma_next * sigma_next + 1)
        alpha = alpha_bar / alpha_bar_next
        x_vp = x / torch.sqrt(1.0 + sigma**2)
        mu = (1.0 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - alpha_bar).sqrt())
        if sigma_next > 0:
            variance = (1 - alpha) * (1.0 - alpha_bar_next) / (1.0 - alpha_bar)
            mu = mu + variance.sqrt() * noise_sampler(sigma, sigma_next)
            mu = mu * torch.sqrt(1.0 + sigma_next**2)
        x = mu
    return x


@torch.no_grad()
def sample_lcm(model, x, sigmas, extra_args=None, callback=None, noise_sampler=None):
    """Latent consistency sampling (Luo et al. 2023): jump to x0, re-noise to the next σ."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


@torch.no_grad()
def sample_lcm_upscale(model, x, sigmas, extra_args=None, callback=None, total_upscale=2.0,
                       upscale_method="bislerp", upscale_steps=None):
    """LCM sampling that enlarges the latent between steps, linearly from 1× to
    ``total_upscale`` over the first ``upscale_steps`` steps (default: about half of them).

    The re-noising draws from one CPU generator seeded with ``extra_args["seed"]``, in the
    latent's current shape (which grows, so a fixed-shape noise sampler cannot serve).
    """
    extra_args, s_in = _setup(x, extra_args)
    seed = extra_args.get("seed")
    generator = cpu_generator(int(seed)) if seed is not None else None
    if upscale_steps is None:
        upscale_steps = max(len(sigmas) // 2 + 1, 2)
    else:
        upscale_steps = min(upscale_steps + 1, len(sigmas) + 1)
    scales = np.linspace(1.0, total_upscale, upscale_steps)[1:]
    height, width = x.shape[-2:]
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if i < len(scales):
            x = resize_samples(x, round(width * scales[i]), round(height * scales[i]), upscale_method)
        if sigmas[i + 1] > 0:
            noise = torch.randn(x.shape, dtype=x.dtype, generator=generator, device="cpu").to(x.device)
            x = x + sigmas[i + 1] * noise
    return x


# Adams–Bashforth weights for equal steps, newest derivative first (orders 1–4).
ADAMS_BASHFORTH = ((1.0,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


@torch.no_grad()
def sample_ipndm(model, x, sigmas, extra_args=None, callback=None, max_order=4):
    """Improved PNDM (Zhang & Chen 2023, DEIS paper): Adams–Bashforth in σ with the equal-step
    weights of up to ``max_order`` derivatives, warming up from Euler; the last step to 0 jumps to x0."""
    extra_args, s_in = _setup(x, extra_args)
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        ds = ([to_d(x, sigmas[i], denoised)] + ds)[:max_order]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            weights = ADAMS_BASHFORTH[min(max_order, i + 1) - 1]
            x = x + (sigmas[i + 1] - sigmas[i]) * sum(w * d for w, d in zip(weights, ds))
    return x


@torch.no_grad()
def sample_heunpp2(model, x, sigmas, extra_args=None, callback=None, s_churn=0.0, s_tmin=0.0,
                   s_tmax=float("inf"), s_noise=1.0, noise_sampler=None):
    """Heun++: each step averages the derivatives at σ_i, σ_{i+1} and σ_{i+2} (found by Euler
    look-ahead), weighted by σ_{i+1}/(3σ_0) and σ_{i+2}/(3σ_0); Heun then Euler near the end."""
    extra_args, s_in = _setup(x, extra_args)
    noise = _lazy_noise(x, extra_args, noise_sampler)
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise, noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
        if sigmas[i + 2] == s_end:
            w_2 = sigmas[i + 1] / (2 * sigmas[0])
            x = x + ((1 - w_2) * d + w_2 * d_2) * dt
            continue
        x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
        d_3 = to_d(x_3, sigmas[i + 2], model(x_3, sigmas[i + 2] * s_in, **extra_args))
        w_2, w_3 = sigmas[i + 1] / (3 * sigmas[0]), sigmas[i + 2] / (3 * sigmas[0])
        x = x + ((1 - w_2 - w_3) * d + w_2 * d_2 + w_3 * d_3) * dt
    return x


