"""CFG++ samplers (Chung et al. 2024): steps along the unconditional noise estimate."""

from __future__ import annotations

import torch

from diffusion.sampling.samplers.common import _guided, _report, _seeded, _setup, get_ancestral_step, to_d


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


