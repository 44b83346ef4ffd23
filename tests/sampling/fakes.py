"""Test doubles for sampling tests: a smooth fake denoiser and a fake ModelHandle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from diffusion.latent_formats import SD15


def fake_denoiser(x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
    """A deterministic, nonlinear x0 estimate so samplers' update rules all matter."""
    s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return x / (1 + s**2) + 0.1 * torch.tanh(x) * s / (1 + s) + 0.05 * torch.sin(3 * x)


@dataclass
class FakeSamplingConfig:
    prediction: str = "eps"
    zero_terminal_snr: bool = False
    linear_start: float = 0.00085
    linear_end: float = 0.012
    timesteps: int = 1000
    schedule: str = "discrete"
    sigma_min: float = 0.002
    sigma_max: float = 120.0
    sigma_data: float = 1.0


@dataclass
class FakeModelHandle:
    """Implements the ModelHandle contract (ARCHITECTURE.md §3) with a tiny analytic 'network'.

    apply_model returns an eps estimate that depends on x, the timestep, the context mean and
    (if given) y and concat, and records every call so tests can check batching.
    """

    family: str = "sd1"
    inpaint: bool = False
    sampling_config: Any = field(default_factory=FakeSamplingConfig)
    latent_format: Any = SD15
    calls: list[dict[str, Any]] = field(default_factory=list)
    adm: bool = False
    load_device: torch.device = torch.device("cpu")
    compute_dtype: torch.dtype = torch.float32

    def clone(self) -> "FakeModelHandle":
        return FakeModelHandle(self.family, self.inpaint, self.sampling_config, self.latent_format, self.calls, self.adm)

    def with_sampling_config(self, **changes):
        import dataclasses

        twin = self.clone()
        twin.sampling_config = dataclasses.replace(self.sampling_config, **changes)
        return twin

    def apply_model(self, x, timestep, context, y=None, concat=None, control=None, transformer_options=None):
        self.calls.append({"x": x.shape, "x_value": x.clone(), "timestep": timestep.clone(), "context": context.shape,
                           "y": None if y is None else y.shape, "concat": None if concat is None else concat.clone()})
        c = context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
        out = 0.5 * x + 0.1 * torch.tanh(x) + c + 0.001 * timestep.reshape(-1, 1, 1, 1)
        if y is not None:
            out = out + y.mean(dim=1).reshape(-1, 1, 1, 1)
        if concat is not None:
            out = out + 0.1 * concat.mean(dim=1, keepdim=True)
        return out.to(x.dtype)

    def encode_adm(self, cond_dict, batch, width, height):
        if not self.adm:
            return None
        pooled = cond_dict.get("pooled_output")
        base = pooled.mean() if pooled is not None else torch.tensor(0.0)
        size = torch.tensor([cond_dict.get("width", width), cond_dict.get("height", height)], dtype=torch.float32)
        return (base + size.mean() / 1000.0).repeat(batch, 8)

    def cache_size_bytes(self) -> int:
        return 0


def cond(value: float, tokens: int = 77, width: int = 8, **options: Any) -> list:
    """A CONDITIONING list with one entry whose context is filled with ``value``."""
    return [[torch.full((1, tokens, width), float(value)), dict(options)]]
