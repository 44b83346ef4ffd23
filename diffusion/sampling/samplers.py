"""Samplers, k-diffusion style: one plain function per sampler.

Every sampler has the signature ``sample_x(model, x, sigmas, extra_args=None, callback=None, ...)``
where ``model(x, sigma[B], **extra_args)`` returns the denoised latent x0, ``x`` is already
noise·σ₀ (+ the image for img2img) and ``sigmas`` descends to the final noise level.
``callback`` receives ``{"x", "i", "sigma", "sigma_hat", "denoised"}`` once per step.
Samplers that inject noise draw it from ``noise_sampler(sigma, sigma_next)``; by default a
generator seeded from ``extra_args["seed"]`` (a Brownian tree for the SDE samplers), so equal
inputs give equal outputs. The math follows the papers cited in each docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from diffusion.latent_ops import resize_samples
from diffusion.sampling.noise import BrownianTreeNoiseSampler, NoiseSampler, cpu_generator, default_noise_sampler

Denoiser = Callable[..., torch.Tensor]
Callback = Callable[[dict[str, Any]], None] | None


# --- helpers ---------------------------------------------------------------------------------


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """ODE derivative dx/dσ = (x − x0)/σ (Karras et al. 2022, eq. 3)."""
    return (x - denoised) / sigma


def get_ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0):
    """Split a step into a deterministic part down to σ_down and fresh noise of size σ_up,
    with σ_down² + σ_up² = σ_to²."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def _setup(x: torch.Tensor, extra_args: dict | None):
    extra_args = {} if extra_args is None else extra_args
    return extra_args, x.new_ones([x.shape[0]])


def _seeded(x: torch.Tensor, extra_args: dict, noise_sampler: NoiseSampler | None) -> NoiseSampler:
    return noise_sampler or default_noise_sampler(x, seed=extra_args.get("seed"))


def _brownian(x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict, noise_sampler: NoiseSampler | None,
              queries: list | None = None):
    """The SDE samplers' noise: a seeded Brownian tree, whose known queries start computing now
    where that pays (see _prefetch_pays)."""
    if noise_sampler is not None:
        return noise_sampler
    positive = sigmas[sigmas > 0]
    sampler = BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=extra_args.get("seed"))
    if _prefetch_pays(x):
        if queries is None:
            queries = [(sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 1) if sigmas[i + 1] > 0]
        sampler.prefetch(queries)
    return sampler


def _prefetch_pays(x: torch.Tensor) -> bool:
    """Whether to compute Brownian increments ahead on a thread: only where the model runs elsewhere.

    With the model on an accelerator the CPU idles through each step, and the prefetch thread
    hides the tree's draws there. With the model on the CPU it only takes turns with the sampler
    for the GIL and the cores (measured slower on 2 cores), and the tree already draws in parallel.
    """
    return x.device.type != "cpu"


def _report(callback: Callback, x, i, sigma, sigma_hat, denoised) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})


def _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise, noise_sampler_factory):
    """Karras' stochastic "churn": raise σ by a factor (1+γ) with fresh noise before the step."""
    gamma = min(s_churn / (len(sigmas) - 1), 2**0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        eps = noise_sampler_factory()(sigmas[i], sigmas[i + 1]) * s_noise
        x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


# --- first-order and Heun-type samplers ------------------------------------------------------


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


def _lazy_noise(x, extra_args, noise_sampler):
    """Churn noise is rarely used: build the generator only when a step asks for it."""
    cache: list[NoiseSampler] = []

    def factory() -> NoiseSampler:
        if not cache:
            cache.append(_seeded(x, extra_args, noise_sampler))
        return cache[0]

    return factory


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


# --- DPM-Solver (Lu et al. 2022), in t = −log σ -------------------------------------------------


class _DPMSolver:
    """Shared state of the fast and adaptive DPM-Solver variants: the eps evaluations."""

    def __init__(self, model, extra_args, callback):
        self.model, self.extra_args, self.callback = model, extra_args, callback

    @staticmethod
    def sigma(t):
        return t.neg().exp()

    @staticmethod
    def t(sigma):
        return sigma.log().neg()

    def eps(self, cache, key, x, t):
        if key not in cache:
            sigma = self.sigma(t)
            cache[key] = (x - self.model(x, sigma * x.new_ones([x.shape[0]]), **self.extra_args)) / sigma
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - self.sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (x - self.sigma(s2) * (r2 * h).expm1() * eps
              - self.sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def report(self, x, i, t, cache):
        if self.callback is not None:
            sigma = self.sigma(t)
            denoised = x - sigma * cache["eps"]
            self.callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})


def _dpm_range(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DPM-Solver integrates to a positive σ: use the last non-zero sigma (as ComfyUI does)."""
    sigma_min = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    return sigma_min, sigmas[0]


@torch.no_grad()
def sample_dpm_fast(model, x, sigmas, extra_args=None, callback=None, eta=0.0, s_noise=1.0, noise_sampler=None):
    """DPM-Solver-fast: ``len(sigmas)-1`` model evaluations spent on uniform steps in log σ,
    mostly third order (Lu et al. 2022, §3.4)."""
    if len(sigmas) <= 1:
        return x
    extra_args, _ = _setup(x, extra_args)
    nfe = len(sigmas) - 1
    sigma_min, sigma_max = _dpm_range(sigmas)
    solver = _DPMSolver(model, extra_args, callback)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    t_start, t_end = solver.t(torch.as_tensor(sigma_max)), solver.t(torch.as_tensor(sigma_min))
    m = math.floor(nfe / 3) + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        cache: dict[str, torch.Tensor] = {}
        t, t_next = ts[i], ts[i + 1]
        if eta:
            sd, _ = get_ancestral_step(solver.sigma(t), solver.sigma(t_next), eta)
            t_next_ = torch.minimum(t_end, solver.t(sd))
            # Clamped: float32 rounding of the log-σ grid can make the difference slightly negative.
            su = (solver.sigma(t_next) ** 2 - solver.sigma(t_next_) ** 2).clamp(min=0) ** 0.5
        else:
            t_next_, su = t_next, 0.0
        solver.eps(cache, "eps", x, t)
        solver.report(x, i, t, cache)
        step = {1: solver.step_1, 2: solver.step_2, 3: solver.step_3}[order]
        x = step(x, t, t_next_, cache)
        if eta:
            x = x + su * s_noise * noise_sampler(solver.sigma(t), solver.sigma(t_next))
    return x


class _PIDStepSizeController:
    """PID control of the log-σ step size from the embedded error estimate."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety, self.eps = accept_safety, eps
        self.errs: list[float] = []

    def propose_step(self, error) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


@torch.no_grad()
def sample_dpm_adaptive(model, x, sigmas, extra_args=None, callback=None, order=3, rtol=0.05, atol=0.0078,
                        h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81, eta=0.0,
                        s_noise=1.0, noise_sampler=None):
    """DPM-Solver-12/23 with error-controlled step size between σ_max and σ_min."""
    if len(sigmas) <= 1:
        return x
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    extra_args, _ = _setup(x, extra_args)
    sigma_min, sigma_max = _dpm_range(sigmas)
    solver = _DPMSolver(model, extra_args, callback)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    t_start, t_end = solver.t(torch.as_tensor(sigma_max)), solver.t(torch.as_tensor(sigma_min))
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    s, x_prev = t_start, x
    pid = _PIDStepSizeController(abs(h_init), pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    steps = 0
    while s < t_end - 1e-5:
        cache: dict[str, torch.Tensor] = {}
        t = torch.minimum(t_end, s + pid.h)
        if eta:
            sd, _ = get_ancestral_step(solver.sigma(s), solver.sigma(t), eta)
            t_ = torch.minimum(t_end, solver.t(sd))
            su = (solver.sigma(t) ** 2 - solver.sigma(t_) ** 2) ** 0.5
        else:
            t_, su = t, 0.0
        solver.eps(cache, "eps", x, s)
        if order == 2:
            x_low = solver.step_1(x, s, t_, cache)
            x_high = solver.step_2(x, s, t_, cache)
        else:
            x_low = solver.step_2(x, s, t_, cache, r1=1 / 3)
            x_high = solver.step_3(x, s, t_, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        solver.report(x, steps, s, cache)
        if pid.propose_step(error):
            x_prev = x_low
            x = x_high + su * s_noise * noise_sampler(solver.sigma(s), solver.sigma(t)) if eta else x_high
            s = t
        steps += 1
    return x


# --- DPM-Solver++ (Lu et al. 2022b), in t = −log σ with data prediction ----------------------------


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                              noise_sampler=None):
    """DPM-Solver++(2S) single-step second order down to σ_down, then noise σ_up."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = -sigmas[i].log(), -sigma_down.log()
            h = t_next - t
            s = t + h / 2
            x_2 = ((-s).exp() / (-t).exp()) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, (-s).exp() * s_in, **extra_args)
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                     noise_sampler=None, r=1 / 2):
    """DPM-Solver++ SDE: two stochastic sub-steps per step (intermediate point at ratio r)."""
    extra_args, s_in = _setup(x, extra_args)
    sigma_fn = lambda t: t.neg().exp()  # noqa: E731 - reads like the paper
    t_fn = lambda sigma: sigma.log().neg()  # noqa: E731
    queries = []
    for i in range(len(sigmas) - 1):
        if sigmas[i + 1] > 0:
            t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
            queries += [(sigma_fn(t), sigma_fn(t + (t_next - t) * r)), (sigma_fn(t), sigma_fn(t_next))]
    noise_sampler = _brownian(x, sigmas, extra_args, noise_sampler, queries)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = get_ancestral_step(sigma_fn(t), sigma_fn(s), eta)
        s_ = t_fn(sd)
        x_2 = (sigma_fn(s_) / sigma_fn(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise_sampler(sigma_fn(t), sigma_fn(s)) * s_noise * su
        denoised_2 = model(x_2, sigma_fn(s) * s_in, **extra_args)
        sd, su = get_ancestral_step(sigma_fn(t), sigma_fn(t_next), eta)
        t_next_ = t_fn(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sigma_fn(t_next_) / sigma_fn(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise_sampler(sigma_fn(t), sigma_fn(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None):
    """DPM-Solver++(2M): second-order multistep from the previous x0 estimate."""
    extra_args, s_in = _setup(x, extra_args)
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            denoised_d = denoised
        else:
            r = (t + sigmas[i - 1].log()) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                        noise_sampler=None, solver_type="midpoint"):
    """DPM-Solver++(2M) SDE with Brownian-tree noise (midpoint or Heun correction)."""
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _brownian(x, sigmas, extra_args, noise_sampler)
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised, h_last = denoised, h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                        noise_sampler=None):
    """DPM-Solver++(3M) SDE: third-order multistep with Brownian-tree noise."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _brownian(x, sigmas, extra_args, noise_sampler)
    denoised_1 = denoised_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
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


# --- UniPC (Zhao et al. 2023) ----------------------------------------------------------------------

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


# --- CFG++ (Chung et al. 2024) ---------------------------------------------------------------------


def _guided(model, x, sigma, extra_args) -> tuple[torch.Tensor, torch.Tensor]:
    """(guided x0, unconditional x0). CFG++ samplers step along the unconditional noise estimate;
    the guidance denoiser reports its uncond x0 into ``uncond_sink`` (computing it even at cfg 1)."""
    sink: dict[str, torch.Tensor] = {}
    denoised = model(x, sigma, uncond_sink=sink, **extra_args)
    if "uncond_denoised" not in sink:
        raise TypeError("CFG++ samplers need a guidance denoiser that reports its unconditional estimate "
                        "(KSampler, SamplerCustom or a GUIDER)")
    return denoised, sink["uncond_denoised"]


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                                  noise_sampler=None):
    """CFG++ Euler ancestral: jump to the guided x0, then re-noise along the unconditional
    direction ε_u = (x − x0_u)/σ down to σ_down, plus fresh noise σ_up."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        denoised, uncond = _guided(model, x, sigmas[i] * s_in, extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = denoised + to_d(x, sigmas[i], uncond) * sigma_down
        if eta > 0 and s_noise > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None):
    """CFG++ Euler (DDIM form): x_next = x0_guided + σ_next·ε_u."""
    return sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args, callback, eta=0.0, s_noise=0.0)


@torch.no_grad()
def sample_euler_cfg_pp_alternative(model, x, sigmas, extra_args=None, callback=None):
    """ComfyUI's "alternative" Euler CFG++: an Euler step whose derivative uses x − x0 + x0_u."""
    extra_args, s_in = _setup(x, extra_args)
    for i in range(len(sigmas) - 1):
        denoised, uncond = _guided(model, x, sigmas[i] * s_in, extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = x + to_d(x - denoised + uncond, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, eta=1.0, s_noise=1.0,
                                     noise_sampler=None):
    """DPM-Solver++(2S) ancestral with CFG++: both sub-steps start from x shifted by the guidance
    term (x0_guided − x0_u), so the solver integrates the unconditional ODE from a guided point."""
    extra_args, s_in = _setup(x, extra_args)
    noise_sampler = _seeded(x, extra_args, noise_sampler)
    for i in range(len(sigmas) - 1):
        denoised, uncond = _guided(model, x, sigmas[i] * s_in, extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised + to_d(x, sigmas[i], uncond) * sigma_down
        else:
            t, t_next = -sigmas[i].log(), -sigma_down.log()
            h = t_next - t
            s = t + h / 2
            shifted = x + (denoised - uncond)
            x_2 = ((-s).exp() / (-t).exp()) * shifted - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, (-s).exp() * s_in, **extra_args)
            x = ((-t_next).exp() / (-t).exp()) * shifted - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model, x, sigmas, extra_args=None, callback=None):
    """DPM-Solver++(2M) with CFG++: the exponential integrator carries x along ε_u while the data
    term uses the guided x0, corrected by the previous unconditional x0."""
    extra_args, s_in = _setup(x, extra_args)
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = _guided(model, x, sigmas[i] * s_in, extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        mix = -(-h).exp() * uncond
        if old_uncond is not None and sigmas[i + 1] != 0:
            r = (t + sigmas[i - 1].log()) / h
            mix = mix - (-h).expm1() * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + (-h).exp() * x
        old_uncond = uncond
    return x


# --- RES multistep, gradient estimation, ER-SDE --------------------------------------------------------


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


# --- tables ------------------------------------------------------------------------------------

# In ComfyUI's order (KSampler's combo). The *_gpu names draw their Brownian noise on the GPU in
# ComfyUI; ours draws the same seeded tree whatever the device, so they are the same functions.
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler,
    "euler_cfg_pp": sample_euler_cfg_pp,
    "euler_ancestral": sample_euler_ancestral,
    "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
    "heun": sample_heun,
    "heunpp2": sample_heunpp2,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpm_fast": sample_dpm_fast,
    "dpm_adaptive": sample_dpm_adaptive,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": sample_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": sample_dpmpp_sde,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": partial(sample_dpmpp_2m_sde, solver_type="heun"),
    "dpmpp_2m_sde_heun_gpu": partial(sample_dpmpp_2m_sde, solver_type="heun"),
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde,
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "ipndm": sample_ipndm,
    "deis": sample_deis,
    "res_multistep": sample_res_multistep,
    "res_multistep_cfg_pp": sample_res_multistep_cfg_pp,
    "res_multistep_ancestral": sample_res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": sample_res_multistep_ancestral_cfg_pp,
    "gradient_estimation": sample_gradient_estimation,
    "gradient_estimation_cfg_pp": sample_gradient_estimation_cfg_pp,
    "er_sde": sample_er_sde,
    "seeds_2": sample_seeds_2,
    "seeds_3": sample_seeds_3,
    "sa_solver": sample_sa_solver,
    "sa_solver_pece": sample_sa_solver_pece,
    # DDIM (η = 0) is exactly Euler on the σ-parameterised ODE; ComfyUI runs it that way too.
    "ddim": sample_euler,
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}
# Samplers only the Sampler* nodes hand out (ComfyUI's KSAMPLER(function) objects, not in the combo).
NODE_SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "lcm_upscale": sample_lcm_upscale,
    "euler_cfg_pp_alternative": sample_euler_cfg_pp_alternative,
}
SAMPLER_NAMES: tuple[str, ...] = tuple(SAMPLERS)

# These samplers get one extra schedule step whose penultimate sigma is then dropped (ComfyUI).
DISCARD_PENULTIMATE_SIGMA_SAMPLERS = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})
# Inpainting with these re-noises the kept region with noise from seed + 1 (ComfyUI's ddim).
RANDOM_INPAINT_NOISE_SAMPLERS = frozenset({"ddim"})
