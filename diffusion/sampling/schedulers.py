"""Noise schedules: each returns a descending float32 sigma tensor of ``steps + 1`` entries
(the last one 0), ComfyUI's scheduler names and spacing rules.

Schedules that depend on the model's table take a ``DiscreteModelSampling``; the rest take the
sigma range. ``SCHEDULERS`` maps a name to a function ``(model_sampling, steps) -> sigmas``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from diffusion.sampling.model_sampling import DiscreteModelSampling


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) eq. 5: evenly spaced in σ^(1/ρ)."""
    ramp = torch.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in log σ."""
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def get_sigmas_kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Evenly spaced in arctan σ: the KL-optimal schedule of Sabour et al. (2024, "Align Your
    Steps", appendix) for a Gaussian data distribution."""
    if n == 1:
        return append_zero(torch.tensor([sigma_max], dtype=torch.float32))
    w = torch.arange(n, dtype=torch.float32) / (n - 1)
    return append_zero((w * math.atan(sigma_min) + (1 - w) * math.atan(sigma_max)).tan())


def normal_schedule(ms: DiscreteModelSampling, steps: int, sgm: bool = False) -> torch.Tensor:
    """Timesteps evenly spaced from the top of the table to the bottom, σ interpolated in log σ.

    ``sgm`` (Stability's "sgm_uniform") spaces ``steps + 1`` points and drops the last, so the
    final step goes from a mid-range σ straight to 0.
    """
    start = ms.timestep(torch.tensor(ms.sigma_max))
    end = ms.timestep(torch.tensor(ms.sigma_min))
    append = True
    if sgm:
        timesteps = torch.linspace(float(start), float(end), steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0.0, abs_tol=1e-5):
            steps += 1
            append = False
        timesteps = torch.linspace(float(start), float(end), steps)
    sigmas = [float(ms.sigma(t)) for t in timesteps]
    return torch.tensor(sigmas + ([0.0] if append else []), dtype=torch.float32)


def simple_schedule(ms: DiscreteModelSampling, steps: int) -> torch.Tensor:
    """Table entries taken every len(table)/steps from the top."""
    stride = len(ms.sigmas) / steps
    sigmas = [float(ms.sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def ddim_uniform_schedule(ms: DiscreteModelSampling, steps: int) -> torch.Tensor:
    """DDIM's "uniform" timesteps 1, 1+k, 1+2k, … with k = len(table)//steps, top first.

    As in ComfyUI, when ``steps`` does not divide the table the walk continues to the end of the
    table, so a few step counts yield one or two extra steps.
    """
    index = 1
    if math.isclose(float(ms.sigmas[index]), 0.0, abs_tol=1e-5):
        steps += 1
        sigmas: list[float] = []
    else:
        sigmas = [0.0]
    stride = max(len(ms.sigmas) // steps, 1)
    while index < len(ms.sigmas):
        sigmas.append(float(ms.sigmas[index]))
        index += stride
    return torch.tensor(sigmas[::-1], dtype=torch.float32)


def beta_schedule(ms: DiscreteModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(α, β) distribution (Lee et al. 2024): denser at both
    ends of the trajectory. Repeated timesteps are dropped."""
    from scipy import stats

    last = len(ms.sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    timesteps = np.rint(stats.beta.ppf(quantiles, alpha, beta) * last)
    sigmas: list[float] = []
    previous = -1.0
    for t in timesteps:
        if t != previous:
            sigmas.append(float(ms.sigmas[int(t)]))
        previous = t
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def sd_turbo_schedule(ms: DiscreteModelSampling, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """SD-Turbo's fixed timesteps 999, 899, …, 99 (starting later for denoise < 1)."""
    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start : start + steps]
    return append_zero(ms.sigma(timesteps).float())


SCHEDULERS: dict[str, Callable[[DiscreteModelSampling, int], torch.Tensor]] = {
    "normal": normal_schedule,
    "karras": lambda ms, steps: get_sigmas_karras(steps, ms.sigma_min, ms.sigma_max),
    "exponential": lambda ms, steps: get_sigmas_exponential(steps, ms.sigma_min, ms.sigma_max),
    "sgm_uniform": lambda ms, steps: normal_schedule(ms, steps, sgm=True),
    "simple": simple_schedule,
    "ddim_uniform": ddim_uniform_schedule,
    "beta": beta_schedule,
    "kl_optimal": lambda ms, steps: get_sigmas_kl_optimal(steps, ms.sigma_min, ms.sigma_max),
}
SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)


def calculate_sigmas(ms: DiscreteModelSampling, scheduler: str, steps: int) -> torch.Tensor:
    """Sigmas for ``steps`` steps with the named schedule (float32, last entry 0)."""
    try:
        schedule = SCHEDULERS[scheduler]
    except KeyError:
        raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}") from None
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return schedule(ms, steps).float()
