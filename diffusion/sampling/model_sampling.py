"""Noise levels of discrete-time SD models: the 1000-step sigma table and the eps/v/LCM
parameterisations that turn a raw network output into a denoised latent.

Timesteps are **rounded** to the nearest table entry (in log-sigma) before they reach the network,
as ComfyUI does (k-diffusion's ``CompVisDenoiser(quantize=True)``): the UNet was trained on integer
timesteps and rounding is what makes our images match ComfyUI's for the same settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_LINEAR_START = 0.00085
DEFAULT_LINEAR_END = 0.012
DEFAULT_TIMESTEPS = 1000
# ᾱ at the last step after zero-terminal-SNR rescaling: exactly 0 would make sigma infinite.
ZERO_SNR_LAST_ALPHA_BAR = 4.8973451890853435e-08
# What the network outputs: noise (eps), velocity (v_prediction), an EDM-preconditioned residual
# (edm), the clean latent (x0), the clean latent from an unscaled input (img_to_img), or eps with
# LCM's consistency boundary condition (lcm).
PREDICTIONS = ("eps", "v_prediction", "edm", "x0", "img_to_img", "lcm")
# Noise-level parameterisations: SD's discrete 1000-step table, or a continuous log-spaced range
# whose timestep is 0.25·log σ (EDM, Karras et al. 2022) or 2/π·atan σ (continuous v).
SCHEDULES = ("discrete", "continuous_edm", "continuous_v")


def scaled_linear_sigmas(
    timesteps: int = DEFAULT_TIMESTEPS,
    linear_start: float = DEFAULT_LINEAR_START,
    linear_end: float = DEFAULT_LINEAR_END,
    zero_terminal_snr: bool = False,
) -> torch.Tensor:
    """σ_t = √((1−ᾱ_t)/ᾱ_t) for SD's "scaled linear" betas, computed in float64."""
    betas = torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    if zero_terminal_snr:
        alphas_cumprod = rescale_zero_terminal_snr(alphas_cumprod)
    return ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5


def rescale_zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Shift and scale √ᾱ so the last step has (almost) zero SNR (Lin et al. 2023, Alg. 1)."""
    root = alphas_cumprod.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    rescaled = root**2
    rescaled[-1] = ZERO_SNR_LAST_ALPHA_BAR
    return rescaled


@dataclass
class DiscreteModelSampling:
    """A discrete model's noise table plus its output parameterisation.

    ``sigmas`` are float32 like ComfyUI's buffers so sigma_min/sigma_max (and therefore karras
    and exponential schedules) agree with it bit for bit.
    """

    sigmas: torch.Tensor
    prediction: str = "eps"
    # LCM-distilled models only see every ``skip_steps``-th timestep of the original table.
    skip_steps: int = 1
    # The data's standard deviation in the preconditioning (1 for SD; 0.5 for EDM-trained models).
    sigma_data: float = 1.0

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction type {self.prediction!r}; expected one of {PREDICTIONS}")
        self.sigmas = self.sigmas.float()
        self.log_sigmas = self.sigmas.log()
        self._log_sigmas_on: dict[torch.device, torch.Tensor] = {}

    def log_sigmas_on(self, device: torch.device) -> torch.Tensor:
        """The log-σ table on ``device``, copied there once: a per-step host copy would stall the
        device queue, and reading a device σ back to the host would too."""
        table = self._log_sigmas_on.get(device)
        if table is None:
            table = self._log_sigmas_on[device] = self.log_sigmas.to(device)
        return table

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Nearest table index (in log σ) for each sigma: the integer timestep the UNet sees."""
        dists = sigma.float().log() - self.log_sigmas_on(sigma.device)[:, None]
        index = dists.abs().argmin(dim=0).view(sigma.shape)
        return index * self.skip_steps + (self.skip_steps - 1)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """σ for (possibly fractional) timesteps, interpolating the table in log σ."""
        t = timestep.float().to(self.log_sigmas.device)
        t = ((t - (self.skip_steps - 1)) / self.skip_steps).clamp(0, len(self.sigmas) - 1)
        low, high = t.floor().long(), t.ceil().long()
        w = t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(timestep.device)

    def percent_to_sigma(self, percent: float) -> float:
        """Sampling progress (0 = start, 1 = end) → σ, as ComfyUI's timestep ranges use it."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)))

    def calculate_input(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """c_in: the UNet expects unit-variance input, x/√(σ²+σ_data²) (img_to_img: x as it is)."""
        if self.prediction == "img_to_img":
            return x
        return x / (_bcast(sigma, x) ** 2 + self.sigma_data**2) ** 0.5

    def calculate_denoised(self, sigma: torch.Tensor, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x0 from the raw network output and the noisy latent x (Karras et al. 2022, table 1:
        x0 = c_skip·x + c_out·F with c_skip = σ_d²/(σ²+σ_d²), c_out = ∓σσ_d/√(σ²+σ_d²) for v/EDM)."""
        if self.prediction in ("x0", "img_to_img"):
            return output
        s = _bcast(sigma, output)
        if self.prediction in ("v_prediction", "edm"):
            data = self.sigma_data**2
            c_out = s * self.sigma_data / (s**2 + data) ** 0.5
            skip = x * data / (s**2 + data)
            return skip + output * c_out if self.prediction == "edm" else skip - output * c_out
        x0 = x - output * s
        if self.prediction == "lcm":
            # Consistency-model boundary condition with σ_data = 0.5 and timestep scaling 10.
            t = _bcast(self.timestep(sigma.reshape(-1)).float(), output) * 10.0
            c_skip = 0.25 / (t**2 + 0.25)
            c_out = t / (t**2 + 0.25) ** 0.5
            return c_out * x0 + c_skip * x
        return x0

    def noise_scaling(
        self, sigma: torch.Tensor | float, noise: torch.Tensor, latent: torch.Tensor, max_denoise: bool = False
    ) -> torch.Tensor:
        """Starting point x = latent + σ·noise; a full denoise uses √(1+σ²) like ComfyUI's EPS."""
        sigma = torch.as_tensor(sigma, dtype=noise.dtype, device=noise.device)
        scale = (1.0 + sigma**2) ** 0.5 if max_denoise else sigma
        if scale.ndim:
            scale = _bcast(scale, noise)
        return latent + noise * scale

    def is_max_denoise(self, first_sigma: float) -> bool:
        """True when sampling starts at (or above) the top of the table: txt2img."""
        return math.isclose(self.sigma_max, first_sigma, rel_tol=1e-5) or first_sigma > self.sigma_max


@dataclass
class ContinuousModelSampling(DiscreteModelSampling):
    """A continuous noise range [σ_min, σ_max] (ModelSamplingContinuousEDM / ContinuousV): the
    network sees a real-valued timestep, 0.25·log σ (EDM) or 2/π·atan σ (v), never rounded.

    ``sigmas`` holds 1000 log-spaced levels so table-based schedules (simple, beta, ...) still work.
    """

    schedule: str = "continuous_edm"

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        if self.schedule == "continuous_v":
            return sigma.atan() / math.pi * 2
        return 0.25 * sigma.log()

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        if self.schedule == "continuous_v":
            return (timestep * math.pi / 2).tan()
        return (timestep / 0.25).exp()

    def percent_to_sigma(self, percent: float) -> float:
        """Progress → σ, linear in log σ over the range."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        low = math.log(self.sigma_min)
        return math.exp((math.log(self.sigma_max) - low) * (1.0 - percent) + low)


def continuous_sigmas(sigma_min: float, sigma_max: float) -> torch.Tensor:
    """1000 levels evenly spaced in log σ (float32, as ComfyUI's buffer)."""
    return torch.linspace(math.log(sigma_min), math.log(sigma_max), 1000).exp()


def _bcast(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    sigma = sigma.to(like.dtype)
    if sigma.ndim == 0:
        return sigma
    return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1))


def model_sampling_from_config(config: Any) -> DiscreteModelSampling:
    """Build the sampling table from a ``SamplingConfig`` (or any object with its fields).

    ``prediction == "lcm"`` keeps every 20th step of the 1000-step table (50 "original" steps),
    as LCM distillation does. A continuous ``schedule`` uses the config's sigma_min, sigma_max and
    sigma_data instead of the table.
    """
    prediction = getattr(config, "prediction", "eps") or "eps"
    schedule = getattr(config, "schedule", "discrete") or "discrete"
    if schedule != "discrete":
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {schedule!r}; expected one of {SCHEDULES}")
        sigmas = continuous_sigmas(float(config.sigma_min), float(config.sigma_max))
        return ContinuousModelSampling(sigmas, prediction, sigma_data=float(config.sigma_data), schedule=schedule)
    sigmas = scaled_linear_sigmas(
        timesteps=int(getattr(config, "timesteps", DEFAULT_TIMESTEPS) or DEFAULT_TIMESTEPS),
        linear_start=float(getattr(config, "linear_start", DEFAULT_LINEAR_START) or DEFAULT_LINEAR_START),
        linear_end=float(getattr(config, "linear_end", DEFAULT_LINEAR_END) or DEFAULT_LINEAR_END),
        zero_terminal_snr=bool(getattr(config, "zero_terminal_snr", False)),
    ).float()
    if prediction != "lcm":
        return DiscreteModelSampling(sigmas, prediction)
    original_steps = 50
    skip = len(sigmas) // original_steps
    kept = torch.stack([sigmas[len(sigmas) - 1 - i * skip] for i in range(original_steps)]).flip(0)
    return DiscreteModelSampling(kept, "lcm", skip_steps=skip)
