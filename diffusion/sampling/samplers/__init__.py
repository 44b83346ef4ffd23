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

from collections.abc import Callable
from functools import partial

import torch

from diffusion.sampling.samplers.cfg_pp import (
    sample_dpmpp_2m_cfg_pp,
    sample_dpmpp_2s_ancestral_cfg_pp,
    sample_euler_ancestral_cfg_pp,
    sample_euler_cfg_pp,
    sample_euler_cfg_pp_alternative,
)
from diffusion.sampling.samplers.classic import (
    lms_coefficient,
    sample_ddpm,
    sample_dpm_2,
    sample_dpm_2_ancestral,
    sample_euler,
    sample_euler_ancestral,
    sample_heun,
    sample_heunpp2,
    sample_ipndm,
    sample_lcm,
    sample_lcm_upscale,
    sample_lms,
)
from diffusion.sampling.samplers.common import (
    get_ancestral_step,
    to_d,
)
from diffusion.sampling.samplers.dpm_solver import (
    sample_dpm_adaptive,
    sample_dpm_fast,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_2s_ancestral,
    sample_dpmpp_3m_sde,
    sample_dpmpp_sde,
)
from diffusion.sampling.samplers.multistep import (
    deis_coefficients,
    sample_deis,
    sample_gradient_estimation,
    sample_gradient_estimation_cfg_pp,
    sample_res_multistep,
    sample_res_multistep_ancestral,
    sample_res_multistep_ancestral_cfg_pp,
    sample_res_multistep_cfg_pp,
)
from diffusion.sampling.samplers.sde_solvers import (
    er_sde_noise_scaler,
    reverse_time_sde_noise_scaler,
    sa_solver_coefficients,
    sa_solver_tau,
    sample_er_sde,
    sample_sa_solver,
    sample_sa_solver_pece,
    sample_seeds_2,
    sample_seeds_3,
)
from diffusion.sampling.samplers.unipc import (
    UNIPC_FINAL_SIGMA,
    sample_uni_pc,
    sample_uni_pc_bh2,
)

__all__ = [
    "DISCARD_PENULTIMATE_SIGMA_SAMPLERS",
    "NODE_SAMPLERS",
    "RANDOM_INPAINT_NOISE_SAMPLERS",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "UNIPC_FINAL_SIGMA",
    "deis_coefficients",
    "er_sde_noise_scaler",
    "get_ancestral_step",
    "lms_coefficient",
    "reverse_time_sde_noise_scaler",
    "sa_solver_coefficients",
    "sa_solver_tau",
    "sample_ddpm",
    "sample_deis",
    "sample_dpm_2",
    "sample_dpm_2_ancestral",
    "sample_dpm_adaptive",
    "sample_dpm_fast",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_cfg_pp",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2s_ancestral",
    "sample_dpmpp_2s_ancestral_cfg_pp",
    "sample_dpmpp_3m_sde",
    "sample_dpmpp_sde",
    "sample_er_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_euler_ancestral_cfg_pp",
    "sample_euler_cfg_pp",
    "sample_euler_cfg_pp_alternative",
    "sample_gradient_estimation",
    "sample_gradient_estimation_cfg_pp",
    "sample_heun",
    "sample_heunpp2",
    "sample_ipndm",
    "sample_lcm",
    "sample_lcm_upscale",
    "sample_lms",
    "sample_res_multistep",
    "sample_res_multistep_ancestral",
    "sample_res_multistep_ancestral_cfg_pp",
    "sample_res_multistep_cfg_pp",
    "sample_sa_solver",
    "sample_sa_solver_pece",
    "sample_seeds_2",
    "sample_seeds_3",
    "sample_uni_pc",
    "sample_uni_pc_bh2",
    "to_d",
]


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
