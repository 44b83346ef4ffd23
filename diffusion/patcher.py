"""MODEL values: a cheap, copy-on-write handle around one shared UNet.

A :class:`ModelHandle` holds the network (shared by all clones), the family facts the samplers
need (:class:`SamplingConfig`, latent format, SDXL conditioning) and a list of weight patches
(LoRA and friends). Clones copy only the patch list; the patches are merged into the shared
weights just before a call, with the originals backed up so another clone can restore them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from diffusion.latent_formats import LatentFormat
from diffusion.memory import ModelManager
from diffusion.models.blocks import timestep_embedding
from diffusion.models.unet import ADM_SCALAR_WIDTH, UNetConfig, UNetModel


@dataclass(frozen=True)
class SamplingConfig:
    """The discrete noise schedule and target of a model (``diffusion.sampling`` builds sigmas from it)."""

    prediction: str = "eps"
    zero_terminal_snr: bool = False
    linear_start: float = 0.00085
    linear_end: float = 0.012
    timesteps: int = 1000

    def __post_init__(self) -> None:
        if self.prediction not in ("eps", "v_prediction"):
            raise ValueError(f"prediction must be 'eps' or 'v_prediction', not {self.prediction!r}")


WeightDelta = Callable[[torch.Tensor], torch.Tensor]
"""Given an original weight (fp32, on the compute device) return ΔW of the same shape."""


@dataclass(frozen=True)
class WeightPatch:
    """``W ← W + strength · delta(W)`` for the UNet parameter ``key`` (LDM name, no prefix)."""

    key: str
    delta: WeightDelta
    strength: float = 1.0


class _SharedUNet:
    """The one network behind a family of clones, and which patch list is merged into it."""

    def __init__(self, unet: UNetModel) -> None:
        self.unet = unet
        self.applied: tuple[WeightPatch, ...] = ()
        self.backups: dict[str, torch.Tensor] = {}
        self.load_info: Any = None  # what the loader detected, for handing the network out again

    @torch.no_grad()
    def ensure_patches(self, patches: tuple[WeightPatch, ...]) -> None:
        if patches == self.applied:
            return
        params = dict(self.unet.named_parameters())
        for key, original in self.backups.items():
            params[key].copy_(original.to(params[key].device))
        self.backups.clear()
        self.applied = ()
        for patch in patches:
            weight = params[patch.key]
            if patch.key not in self.backups:
                self.backups[patch.key] = weight.detach().to("cpu", copy=True)
            merged = weight.float() + patch.strength * patch.delta(weight.float()).to(
                weight.device, torch.float32
            )
            weight.copy_(merged.to(weight.dtype))
        self.applied = patches


class ModelHandle:
    """The MODEL value: ``apply_model`` runs the UNet; ``clone`` is cheap and shares weights."""

    def __init__(
        self,
        unet: UNetModel,
        manager: ModelManager,
        family: str,
        latent_format: LatentFormat,
        sampling_config: SamplingConfig,
        *,
        name: str = "",
        shared: _SharedUNet | None = None,
        patches: tuple[WeightPatch, ...] = (),
    ) -> None:
        self._shared = shared or _SharedUNet(unet)
        self.manager = manager
        self.family = family
        self.latent_format = latent_format
        self.sampling_config = sampling_config
        self.name = name
        self.patches = patches
        self.model_options: dict[str, Any] = {}
        manager.register(unet, f"{name or family} (unet)")

    # identity and copies ------------------------------------------------------------------------
    @property
    def diffusion_model(self) -> UNetModel:
        """The shared network (read-only use; patch through :meth:`add_patches`)."""
        return self._shared.unet

    @property
    def shared_network(self) -> _SharedUNet:
        """The network and patch state shared by this handle and all its clones."""
        return self._shared

    @property
    def unet_config(self) -> UNetConfig:
        """The architecture inferred from the checkpoint (widths, depths, heads, adm width)."""
        return self._shared.unet.config

    @property
    def inpaint(self) -> bool:
        """True for 9-channel inpainting UNets (x ⊕ mask ⊕ masked-image latent)."""
        config = self._shared.unet.config
        return config.in_channels > config.out_channels

    @property
    def load_device(self) -> torch.device:
        return self.manager.device

    @property
    def compute_dtype(self) -> torch.dtype:
        return next(self._shared.unet.parameters()).dtype

    def clone(self) -> ModelHandle:
        """A new handle on the same weights; its patch list and settings can change independently."""
        twin = ModelHandle(
            self._shared.unet,
            self.manager,
            self.family,
            self.latent_format,
            self.sampling_config,
            name=self.name,
            shared=self._shared,
            patches=self.patches,
        )
        twin.model_options = dict(self.model_options)
        return twin

    def with_sampling_config(self, **changes: Any) -> ModelHandle:
        """Clone with some SamplingConfig fields replaced (ModelSamplingDiscrete)."""
        twin = self.clone()
        twin.sampling_config = replace(self.sampling_config, **changes)
        return twin

    def is_clone(self, other: ModelHandle) -> bool:
        """True when both handles share one network."""
        return self._shared is other._shared

    def patch_keys(self) -> set[str]:
        """Names of the UNet parameters that patches may target."""
        return {name for name, _ in self._shared.unet.named_parameters()}

    def add_patches(self, deltas: dict[str, WeightDelta], strength: float = 1.0) -> list[str]:
        """Record weight patches on this handle (call on a clone); returns the keys accepted."""
        known = self.patch_keys()
        accepted = [key for key in deltas if key in known]
        self.patches = self.patches + tuple(WeightPatch(k, deltas[k], strength) for k in accepted)
        return accepted

    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self._shared.unet)

    def cache_shared_parts(self) -> tuple[tuple[_SharedUNet, int], ...]:
        """The network all clones of this handle share: the output cache counts it once."""
        return ((self._shared, self.manager.size_of(self._shared.unet)),)

    # running ------------------------------------------------------------------------------------
    def prepare(self) -> UNetModel:
        """Place the network on the compute device with this handle's patches merged."""
        unet = self.manager.load(self._shared.unet)
        self._shared.ensure_patches(self.patches)
        return unet

    def apply_model(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor | None = None,
        concat: torch.Tensor | None = None,
        control: dict[str, list[torch.Tensor | None]] | None = None,
    ) -> torch.Tensor:
        """Raw network output (eps or v) for scaled-and-c_in'd latents ``x`` at float timesteps ``[B]``.

        ``concat`` is the inpainting input ``cat([mask, masked_latent])`` (5 channels); an
        inpainting model called without it sees "inpaint everything" (mask 1, empty latent).
        """
        unet = self.prepare()
        device, dtype = self.manager.device, self.compute_dtype
        extra = self.unet_config.in_channels - x.shape[1]
        if extra > 0:
            if concat is None:
                concat = torch.zeros(x.shape[0], extra, *x.shape[2:], dtype=x.dtype, device=x.device)
                concat[:, :1] = 1.0
            if concat.shape[1] != extra:
                raise ValueError(f"inpainting model needs {extra} concat channels, got {concat.shape[1]}")
            x_in = torch.cat([x, concat.to(x.device, x.dtype).expand(x.shape[0], -1, -1, -1)], dim=1)
        else:
            x_in = x
        if timestep.ndim == 0:
            timestep = timestep.expand(x.shape[0])
        if control is not None:
            control = {k: [None if t is None else t.to(device) for t in v] for k, v in control.items()}
        with torch.no_grad():
            out = unet(
                x_in.to(device, dtype),
                timestep.to(device, torch.float32),
                context.to(device, dtype),
                None if y is None else y.to(device, dtype),
                control,
            )
        return out.to(x.device, x.dtype)

    def encode_adm(
        self, cond_dict: dict[str, Any], batch: int, width: int = 768, height: int = 768
    ) -> torch.Tensor | None:
        """SDXL ``y``: pooled text ⊕ sinusoidal embeddings of the micro-conditioning sizes.

        Keys and defaults follow ComfyUI: ``width``/``height`` (fallback: the arguments, ComfyUI uses
        768), ``crop_w``/``crop_h`` 0, ``target_width``/``target_height`` = width/height, refiner
        ``aesthetic_score`` 6.0. None for models without ``label_emb`` (SD1/SD2).
        """
        adm = self.unet_config.adm_in_channels
        if adm is None:
            return None
        w = cond_dict.get("width", width)
        h = cond_dict.get("height", height)
        if self.family == "sdxl-refiner":
            scalars = [
                h,
                w,
                cond_dict.get("crop_h", 0),
                cond_dict.get("crop_w", 0),
                cond_dict.get("aesthetic_score", 6.0),
            ]
        else:
            scalars = [
                h,
                w,
                cond_dict.get("crop_h", 0),
                cond_dict.get("crop_w", 0),
                cond_dict.get("target_height", h),
                cond_dict.get("target_width", w),
            ]
        pooled_width = adm - len(scalars) * ADM_SCALAR_WIDTH
        pooled = cond_dict.get("pooled_output")
        if pooled is None:
            pooled = torch.zeros(1, pooled_width)
        pooled = pooled.float().reshape(-1, pooled.shape[-1])
        if pooled.shape[-1] != pooled_width:
            raise ValueError(f"pooled_output has width {pooled.shape[-1]}, this model expects {pooled_width}")
        sizes = timestep_embedding(torch.tensor(scalars, dtype=torch.float32), ADM_SCALAR_WIDTH).reshape(
            1, -1
        )
        if pooled.shape[0] not in (1, batch):
            pooled = pooled[:1]
        pooled = pooled.expand(batch, -1)
        return torch.cat([pooled, sizes.expand(batch, -1)], dim=1)
