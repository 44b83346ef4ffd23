"""Noise schedules: each returns a descending float32 sigma tensor of ``steps + 1`` entries
(the last one 0), ComfyUI's scheduler names and spacing rules.

Schedules that depend on the model's table take a ``DiscreteModelSampling``; the rest take the
sigma range. ``SCHEDULERS`` maps a name to a function ``(model_sampling, steps) -> sigmas``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path

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


def get_sigmas_polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """log σ follows a polynomial ramp of degree ρ from log σ_max to log σ_min (ρ = 1: exponential)."""
    ramp = torch.linspace(1, 0, n) ** rho
    return append_zero((ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)).exp())


def get_sigmas_vp(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous VP-SDE's noise levels σ(t) = √(exp(β_d t²/2 + β_min t) − 1), t from 1 to ε_s
    (Song et al. 2021; Karras et al. 2022, table 1)."""
    t = torch.linspace(1, eps_s, n)
    return append_zero(torch.special.expm1(beta_d * t**2 / 2 + beta_min * t).sqrt())


def get_sigmas_laplace(n: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> torch.Tensor:
    """log σ at the quantiles of a Laplace(μ, β) distribution, clamped to [σ_min, σ_max]
    (Hang et al. 2024, "Improved Noise Schedule for Diffusion Training"): dense around σ = e^μ.

    As in ComfyUI no final 0 is appended: the schedule ends at the last quantile.
    """
    u = torch.linspace(0, 1, n)
    log_sigma = mu - beta * torch.sign(0.5 - u) * torch.log(1 - 2 * torch.abs(0.5 - u) + 1e-5)
    return log_sigma.exp().clamp(min=sigma_min, max=sigma_max)


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


# --- published step schedules ------------------------------------------------------------------

# Align Your Steps (Sabour et al. 2024): optimised 10-step schedules, from the authors' how-to page.
AYS_NOISE_LEVELS: dict[str, tuple[float, ...]] = {
    "SD1": (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
    "SDXL": (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582),
    "SVD": (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002),
}
GITS_TABLE = Path(__file__).with_name("data") / "gits_sigmas.json"


def loglinear_interp(levels: list[float] | tuple[float, ...], num: int) -> np.ndarray:
    """Resample a descending list of noise levels to ``num`` points, linearly in log σ."""
    xs = np.linspace(0, 1, len(levels))
    ys = np.log(np.asarray(levels, dtype=np.float64)[::-1])
    return np.exp(np.interp(np.linspace(0, 1, num), xs, ys))[::-1].copy()


def _truncate(levels: np.ndarray | list[float], steps: int, denoise: float) -> torch.Tensor:
    """Keep the last round(steps·denoise) steps and end at 0 (the AYS/GITS nodes' denoise rule)."""
    if denoise <= 0.0:
        return torch.zeros(0)
    total = round(steps * denoise) if denoise < 1.0 else steps
    kept = list(levels)[-(total + 1):]
    kept[-1] = 0.0
    return torch.tensor(kept, dtype=torch.float32)


def align_your_steps_schedule(model_type: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """The AYS schedule for ``model_type`` (SD1, SDXL, SVD), log-linearly resampled to ``steps``."""
    try:
        levels: np.ndarray | tuple[float, ...] = AYS_NOISE_LEVELS[model_type]
    except KeyError:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {', '.join(AYS_NOISE_LEVELS)}") from None
    if steps + 1 != len(levels):
        levels = loglinear_interp(levels, steps + 1)
    return _truncate(levels, steps, denoise)


@cache
def _gits_table() -> dict[str, list[list[float]]]:
    return json.loads(GITS_TABLE.read_text())["sigmas"]


def gits_schedule(coeff: float, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """GITS time steps for SD1.5 (Chen et al. 2024) for a coefficient in 0.80…1.50 (step 0.05):
    tabulated up to 20 steps, the 20-step schedule log-linearly resampled beyond."""
    rows = _gits_table().get(f"{round(coeff, 2):.2f}")
    if rows is None:
        raise ValueError(f"GITS coeff must be one of {', '.join(_gits_table())}, got {coeff}")
    if steps < 2:
        raise ValueError(f"GITS needs at least 2 steps, got {steps}")
    levels = rows[steps - 2] if steps <= 20 else loglinear_interp(rows[-1], steps + 1)
    return _truncate(levels, steps, denoise)


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
