"""CONTROL_NET values: ComfyUI's ``ControlBase`` interface over our ControlNet / T2I networks.

A loader returns one object holding the network; an apply node takes ``copy()`` (sharing the
network), sets its hint with ``set_cond_hint`` and chains it to the control already on the
conditioning (``previous_controlnet``), so stacked hints sum their residuals. During sampling
the guidance calls ``pre_run`` once (start/end percent → σ window, family check) and
``get_control`` for every model call, with the call's batch (cond and uncond rows together).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from diffusion.image_ops import resize_channels_first
from diffusion.memory import ModelManager

Residuals = dict[str, list[torch.Tensor | None]]


class ControlFamilyError(ValueError):
    """A control model made for another model family than the one sampling."""


def broadcast_hint(hint: torch.Tensor, target: int, batched_number: int) -> torch.Tensor:
    """Fit a hint batch to a model call of ``batched_number`` conditioning entries × latent batch.

    As ComfyUI: one hint serves every row; otherwise each entry's rows take the hints in order,
    repeated (or cut) to the latent batch.
    """
    if hint.shape[0] == 1:
        return hint
    per_entry = target // batched_number
    hint = hint[:per_entry]
    if per_entry > hint.shape[0]:
        repeats = [hint] * (per_entry // hint.shape[0]) + [hint[: per_entry % hint.shape[0]]]
        hint = torch.cat(repeats)
    return hint if hint.shape[0] == target else torch.cat([hint] * batched_number)


class ControlBase:
    """Hint, strength, σ window and the chain to the previous control (ComfyUI's attributes)."""

    def __init__(self, network: nn.Module, manager: ModelManager, family: str) -> None:
        self.network = network
        self.manager = manager
        self.family = family
        self.compatible_families: tuple[str, ...] = (family,)
        self.cond_hint_original: torch.Tensor | None = None
        self.cond_hint: torch.Tensor | None = None
        self.strength = 1.0
        self.timestep_percent_range = (0.0, 1.0)
        self.timestep_range: tuple[float, float] | None = None
        self.previous_controlnet: ControlBase | None = None
        self.global_average_pooling = False
        self.compression_ratio = 8
        self.upscale_algorithm = "nearest-exact"
        self.extra_args: dict[str, Any] = {}
        self.vae: Any = None
        self.extra_concat: list = []

    # building (each apply node works on a copy) ---------------------------------------------------
    def copy(self) -> ControlBase:
        """A new control sharing the network, with this one's settings and no hint chain."""
        other = type(self).__new__(type(self))
        ControlBase.__init__(other, self.network, self.manager, self.family)
        other.compatible_families = self.compatible_families
        self.copy_to(other)
        return other

    def copy_to(self, other: ControlBase) -> None:
        other.cond_hint_original = self.cond_hint_original
        other.strength = self.strength
        other.timestep_percent_range = self.timestep_percent_range
        other.global_average_pooling = self.global_average_pooling
        other.compression_ratio = self.compression_ratio
        other.upscale_algorithm = self.upscale_algorithm
        other.extra_args = dict(self.extra_args)
        other.vae = self.vae

    def set_cond_hint(self, cond_hint: torch.Tensor, strength: float = 1.0,
                      timestep_percent_range: tuple[float, float] = (0.0, 1.0), vae: Any = None,
                      extra_concat: list | None = None) -> ControlBase:
        """Hint image [B,C,H,W] in 0..1 (ComfyUI's argument order); returns self."""
        self.cond_hint_original = cond_hint
        self.strength = float(strength)
        self.timestep_percent_range = (float(timestep_percent_range[0]), float(timestep_percent_range[1]))
        self.vae = vae
        self.extra_concat = list(extra_concat or [])
        self.cond_hint = None
        return self

    def set_previous_controlnet(self, controlnet: ControlBase | None) -> ControlBase:
        self.previous_controlnet = controlnet
        return self

    def set_extra_arg(self, name: str, value: Any) -> None:
        self.extra_args[name] = value

    # sampling -------------------------------------------------------------------------------------
    def pre_run(self, model: Any, percent_to_sigma: Callable[[float], float]) -> None:
        """Before a sampling run: refuse another family's model and turn percents into a σ window."""
        family = getattr(model, "family", None)
        if family is not None and family not in self.compatible_families:
            raise ControlFamilyError(
                f"this {type(self).__name__} was made for {self.family} models, but the model being sampled "
                f"is {family}; load a {family} ControlNet/T2I-Adapter"
            )
        start, end = self.timestep_percent_range
        self.timestep_range = (percent_to_sigma(start), percent_to_sigma(end))
        if self.previous_controlnet is not None:
            self.previous_controlnet.pre_run(model, percent_to_sigma)

    def active(self, sigma: torch.Tensor | None) -> bool:
        """Inside the σ window and with a non-zero strength (strength 0 is exactly no control)."""
        if self.strength == 0.0 or self.cond_hint_original is None:
            return False
        if self.timestep_range is None or sigma is None:
            return True
        s = float(sigma.reshape(-1)[0])
        return self.timestep_range[1] <= s <= self.timestep_range[0]

    def get_control(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                    y: torch.Tensor | None = None, sigma: torch.Tensor | None = None,
                    batched_number: int = 1) -> Residuals | None:
        """Residuals of this control and the chain before it for one model call (None: none apply).

        ``x`` is the c_in-scaled latent batch, ``timestep`` the rounded float timesteps ``[B]``.
        """
        previous = None
        if self.previous_controlnet is not None:
            previous = self.previous_controlnet.get_control(x, timestep, context, y, sigma, batched_number)
        if not self.active(sigma):
            return previous
        own = self.residuals(x, timestep, context, y, batched_number)
        return self.control_merge(own, previous, x.dtype)

    def residuals(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                  y: torch.Tensor | None, batched_number: int) -> Residuals:
        raise NotImplementedError

    def hint_for(self, x: torch.Tensor, batched_number: int, width: int, height: int) -> torch.Tensor:
        """The hint at ``width``×``height`` (nearest-exact, centre crop) fitted to the call's batch;
        the resized hint is kept until the size changes."""
        assert self.cond_hint_original is not None
        if self.cond_hint is None or tuple(self.cond_hint.shape[-2:]) != (height, width):
            self.cond_hint = resize_channels_first(
                self.cond_hint_original.float(), width, height, self.upscale_algorithm, "center"
            )
        return broadcast_hint(self.cond_hint, x.shape[0], batched_number)

    def control_merge(self, control: Residuals, previous: Residuals | None, dtype: torch.dtype) -> Residuals:
        """Scale by strength (mean-pooled for shuffle models) and add the previous control's residuals."""
        out: Residuals = {}
        for key, residuals in control.items():
            scaled: list[torch.Tensor | None] = []
            for residual in residuals:
                if residual is not None:
                    if self.global_average_pooling:
                        residual = residual.mean(dim=(2, 3), keepdim=True).expand_as(residual)
                    residual = (residual * self.strength).to(dtype)
                scaled.append(residual)
            out[key] = scaled
        for key, residuals in (previous or {}).items():
            mine = out.setdefault(key, [])
            for index, residual in enumerate(residuals):
                if index >= len(mine):
                    mine.append(residual)
                elif residual is not None:
                    mine[index] = residual if mine[index] is None else residual + mine[index]
        return out

    def cleanup(self) -> None:
        """Drop the resized hint (after sampling), along the chain."""
        self.cond_hint = None
        if self.previous_controlnet is not None:
            self.previous_controlnet.cleanup()

    def get_models(self) -> list[nn.Module]:
        """Networks of this control and the chain before it (for loading them before sampling)."""
        previous = self.previous_controlnet.get_models() if self.previous_controlnet is not None else []
        return previous + [self.network]

    def inference_memory_requirements(self, dtype: torch.dtype) -> int:
        previous = self.previous_controlnet
        return previous.inference_memory_requirements(dtype) if previous is not None else 0

    # output cache accounting ------------------------------------------------------------------------
    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self.network)

    def cache_shared_parts(self) -> tuple[tuple[nn.Module, int], ...]:
        """Copies share the network: the cache counts it once."""
        return ((self.network, self.manager.size_of(self.network)),)

    def _run(self, *args: torch.Tensor | None) -> tuple[nn.Module, list[torch.Tensor | None]]:
        """The network placed on the compute device and ``args`` moved there in its dtype."""
        network = self.manager.load(self.network)
        dtype = next(network.parameters()).dtype
        device = self.manager.device
        return network, [None if a is None else a.to(device, dtype) for a in args]


class ControlNet(ControlBase):
    """A ControlNet (diffusion.controlnet.network.ControlNetModel) as a CONTROL_NET value."""

    def residuals(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                  y: torch.Tensor | None, batched_number: int) -> Residuals:
        ratio = self.compression_ratio
        hint = self.hint_for(x, batched_number, x.shape[3] * ratio, x.shape[2] * ratio)
        network, (x_in, hint_in, context_in, y_in) = self._run(x, hint, context, y)
        with torch.no_grad():
            return network(x_in, hint_in, timestep.to(x_in.device, torch.float32), context_in, y_in)
