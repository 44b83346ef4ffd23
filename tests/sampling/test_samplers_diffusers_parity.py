"""Samplers k-diffusion lacks (DDIM, DDPM, UniPC) against diffusers' schedulers.

diffusers works in the variance-preserving space x_vp = x/√(1+σ²) with discrete timesteps; the
samplers here work on x with noise level σ. Both run the same tiny eps network.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UniPCMultistepScheduler

from diffusion.sampling import samplers
from diffusion.sampling.model_sampling import scaled_linear_sigmas
from diffusion.sampling.schedulers import get_sigmas_karras
from tests.sampling.fakes import fake_denoiser


class TinyEpsNet(torch.nn.Module):
    """A random conv net with a timestep embedding: enough structure for the update rules."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 4, 3, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.2
        self.double()

    @torch.no_grad()
    def forward(self, x_vp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv1(x_vp) + torch.sin(t.reshape(-1, 1, 1, 1) / 100.0))
        return self.conv2(h)


def _table(scheduler) -> torch.Tensor:
    ac = scheduler.alphas_cumprod.double()
    return ((1 - ac) / ac) ** 0.5


def _denoiser_for(net: TinyEpsNet, table: torch.Tensor):
    """x0 = x − σ·eps(x/√(1+σ²), t), with t the table index of σ (exact for table sigmas)."""

    def denoise(x, sigma, **_):
        s = sigma.reshape(-1, 1, 1, 1)
        t = (table[None, :] - sigma.reshape(-1, 1)).abs().argmin(dim=1).double()
        return x - s * net(x / (1 + s**2) ** 0.5, t)

    return denoise


def test_ddim_matches_diffusers_ddim_scheduler_on_a_tiny_model():
    steps = 10
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=True, timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    net, table = TinyEpsNet(), _table(scheduler)
    sigmas = torch.cat([table[scheduler.timesteps.long()], torch.zeros(1, dtype=torch.float64)])
    x_vp = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    ours = samplers.SAMPLERS["ddim"](_denoiser_for(net, table), x_vp * (1 + sigmas[0] ** 2) ** 0.5, sigmas)

    sample = x_vp
    for t in scheduler.timesteps:
        sample = scheduler.step(net(sample, t.double().reshape(1)), t, sample, eta=0.0).prev_sample
    assert (ours - sample).abs().max() <= 1e-5


def test_ddpm_matches_diffusers_ddpm_scheduler_with_the_same_noise():
    timesteps = [999, 800, 600, 400, 250, 120, 40, 10]
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              variance_type="fixed_small")
    scheduler.set_timesteps(timesteps=timesteps)
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()  # keep its arithmetic in float64 too
    net, table = TinyEpsNet(), _table(scheduler)
    sigmas = torch.cat([table[torch.tensor(timesteps)], torch.zeros(1, dtype=torch.float64)])
    x_vp = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    ours_noise = torch.Generator().manual_seed(9)
    ours = samplers.sample_ddpm(
        _denoiser_for(net, table), x_vp * (1 + sigmas[0] ** 2) ** 0.5, sigmas,
        noise_sampler=lambda s, sn: torch.randn(x_vp.shape, generator=ours_noise, dtype=torch.float64),
    )

    theirs_noise = torch.Generator().manual_seed(9)
    sample = x_vp
    for t in scheduler.timesteps:
        sample = scheduler.step(net(sample, t.double().reshape(1)), t, sample, generator=theirs_noise).prev_sample
    assert (ours - sample).abs().max() <= 1e-5


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("steps", [2, 3, 4, 8])
def test_uni_pc_matches_diffusers_unipc_multistep(variant, steps):
    table = scaled_linear_sigmas()
    sigmas = get_sigmas_karras(steps, float(table[0]), float(table[-1])).double()
    x = torch.randn((2, 4, 5, 6), generator=torch.Generator().manual_seed(3), dtype=torch.float64) * sigmas[0]
    name = "uni_pc" if variant == "bh1" else "uni_pc_bh2"
    ours = samplers.SAMPLERS[name](fake_denoiser, x.clone(), sigmas)

    scheduler = UniPCMultistepScheduler(solver_order=3, prediction_type="sample", solver_type=variant,
                                        lower_order_final=True)
    scheduler.set_timesteps(steps)
    # Drive diffusers with our noise levels; like ComfyUI, UniPC ends at σ = 0.001 rather than 0.
    scheduler.sigmas = torch.cat([sigmas[:-1], torch.tensor([samplers.UNIPC_FINAL_SIGMA], dtype=torch.float64)])
    sample = x / (1 + sigmas[0] ** 2) ** 0.5
    for k, t in enumerate(scheduler.timesteps):
        s = scheduler.sigmas[k]
        x0 = fake_denoiser(sample * (1 + s**2) ** 0.5, s.reshape(1).repeat(x.shape[0]))
        sample = scheduler.step(x0, t, sample).prev_sample
    theirs = sample * (1 + samplers.UNIPC_FINAL_SIGMA**2) ** 0.5
    assert (ours - theirs).abs().max() <= 1e-5


def test_lcm_matches_diffusers_lcm_scheduler_with_the_same_noise():
    from diffusers import LCMScheduler

    scheduler = LCMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                             prediction_type="sample")
    scheduler.set_timesteps(4)
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    # The consistency boundary condition belongs to the model's parameterisation, not the sampler:
    # with c_skip = 0, c_out = 1 diffusers' step is the bare LCM sampler.
    scheduler.get_scalings_for_boundary_condition_discrete = lambda timestep: (0.0, 1.0)
    table = _table(scheduler)
    sigmas = torch.cat([table[scheduler.timesteps.long()], torch.zeros(1, dtype=torch.float64)])
    x_vp = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    ours_noise = torch.Generator().manual_seed(8)
    ours = samplers.sample_lcm(
        fake_denoiser, x_vp * (1 + sigmas[0] ** 2) ** 0.5, sigmas,
        noise_sampler=lambda s, sn: torch.randn(x_vp.shape, generator=ours_noise, dtype=torch.float64),
    )

    theirs_noise = torch.Generator().manual_seed(8)
    sample = x_vp
    for k, t in enumerate(scheduler.timesteps):
        s = sigmas[k]
        x0 = fake_denoiser(sample * (1 + s**2) ** 0.5, s.reshape(1))
        sample = scheduler.step(x0, t, sample, generator=theirs_noise).prev_sample
    assert (ours - sample).abs().max() <= 1e-5
