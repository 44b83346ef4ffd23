"""MODEL values: a cheap, copy-on-write handle around one shared UNet.

A :class:`ModelHandle` holds the network (shared by all clones), the family facts the samplers
need (:class:`SamplingConfig`, latent format, SDXL conditioning) and ComfyUI's per-handle state:
weight patches by state-dict key (LoRA, merges; see diffusion/weight_patches.py) and
``model_options``. Clones copy only that state; the patches are merged into the shared weights
just before a call, and another clone restores the originals bit for bit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import torch

from diffusion.clip_vision.unclip import NoiseAugmentor, revision_pooled, unclip_adm
from diffusion.compile import forward_for
from diffusion.latent_formats import LatentFormat
from diffusion.memory import ModelManager
from diffusion.model_options import ModelOptions, copy_nested, new_model_options
from diffusion.models.blocks import timestep_embedding
from diffusion.models.unet import ADM_SCALAR_WIDTH, UNetConfig, UNetModel
from diffusion.sampling.guidance import denoise
from diffusion.sampling.model_sampling import (
    PREDICTIONS,
    SCHEDULES,
    DiscreteModelSampling,
    model_sampling_from_config,
)
from diffusion.weight_patches import (
    PatchedWeights,
    PatchEntry,
    copy_patch_lists,
    key_patches,
    patch_value_parts,
    record_patches,
)

MODEL_KEY_PREFIX = "diffusion_model."
"""ComfyUI's state-dict prefix of UNet parameters inside a MODEL (``model.model.state_dict()``)."""


@dataclass(frozen=True)
class SamplingConfig:
    """The noise schedule and target of a model (``diffusion.sampling`` builds sigmas from it).

    ``schedule`` "discrete" is SD's beta table (linear_start/end, timesteps, zero_terminal_snr);
    "continuous_edm"/"continuous_v" use sigma_min/sigma_max/sigma_data (ModelSamplingContinuous*).
    """

    prediction: str = "eps"
    zero_terminal_snr: bool = False
    linear_start: float = 0.00085
    linear_end: float = 0.012
    timesteps: int = 1000
    schedule: str = "discrete"
    sigma_min: float = 0.002
    sigma_max: float = 120.0
    sigma_data: float = 1.0

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, not {self.prediction!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.schedule != "discrete" and not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}")


class _SharedUNet:
    """The one network behind a family of clones, and the patch set merged into it."""

    def __init__(self, unet: UNetModel, offload_device: torch.device) -> None:
        self.unet = unet
        keys = {MODEL_KEY_PREFIX + name: name for name, _ in unet.named_parameters()}
        self.weights = PatchedWeights(unet, keys, offload_device)
        self.load_info: Any = None  # what the loader detected, for handing the network out again
        self.compiled: Any = None  # diffusion.compile.CompiledUNet under --compile
        self.noise_augmentor: NoiseAugmentor | None = None  # stable unCLIP's image-embed statistics


class BaseModel:
    """ComfyUI's ``model.model`` as packs read it: the UNet, noise parameterisation, latent format.

    A view on one handle (made on access; holds no state of its own).
    """

    def __init__(self, handle: ModelHandle) -> None:
        self._handle = handle

    @property
    def diffusion_model(self) -> UNetModel:
        return self._handle.diffusion_model

    @property
    def model_sampling(self) -> Any:
        return self._handle.get_model_object("model_sampling")

    @property
    def latent_format(self) -> LatentFormat:
        return self._handle.latent_format

    def get_dtype(self) -> torch.dtype:
        return self._handle.compute_dtype

    def process_latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw LATENT samples → the model's scaled space."""
        return self._handle.latent_format.process_in(latent)

    def process_latent_out(self, latent: torch.Tensor) -> torch.Tensor:
        """The model's scaled space → raw LATENT samples."""
        return self._handle.latent_format.process_out(latent)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The unpatched weights under ComfyUI keys (``diffusion_model.…``)."""
        return self._handle.model_state_dict()

    def apply_model(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        c_concat: torch.Tensor | None = None,
        c_crossattn: torch.Tensor | None = None,
        control: Any = None,
        transformer_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """ComfyUI's ``BaseModel.apply_model``: the denoised latent for noisy `x` at sigmas `t`."""
        return denoise(
            self._handle,
            self.model_sampling,
            x,
            t,
            c_crossattn,
            c_concat=c_concat,
            y=kwargs.get("y"),
            control=control,
            transformer_options=transformer_options,
        )


class ModelHandle(ModelOptions):
    """The MODEL value: ``apply_model`` runs the UNet; ``clone`` is cheap and shares weights.

    Beside our own API it offers ComfyUI's ``ModelPatcher`` interface (weight patches, hook setters
    from :class:`ModelOptions`, object patches, ``model``); see docs/MODEL_INTERFACE.md.
    """

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
    ) -> None:
        self._shared = shared or _SharedUNet(unet, manager.offload_device)
        self.manager = manager
        self.family = family
        self.latent_format = latent_format
        self.sampling_config = sampling_config
        self.name = name
        # ComfyUI's ModelPatcher state: weight patches by state-dict key and the id of that set.
        self.patches: dict[str, list[PatchEntry]] = {}
        self.patches_uuid: uuid.UUID | None = None
        self.model_options: dict[str, Any] = new_model_options()
        self.object_patches: dict[str, Any] = {}
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
    def offload_device(self) -> torch.device:
        return self.manager.offload_device

    @property
    def compute_dtype(self) -> torch.dtype:
        return next(self._shared.unet.parameters()).dtype

    def model_dtype(self) -> torch.dtype:
        """ComfyUI's name for the compute dtype."""
        return self.compute_dtype

    def model_size(self) -> int:
        """Bytes of the network's weights (ComfyUI's ``ModelPatcher.model_size``)."""
        return self.manager.size_of(self._shared.unet)

    @property
    def model(self) -> BaseModel:
        """ComfyUI's ``ModelPatcher.model``: ``diffusion_model``, ``model_sampling``, ``latent_format``."""
        return BaseModel(self)

    # object patches -----------------------------------------------------------------------------
    def add_object_patch(self, name: str, obj: Any) -> None:
        """Record an attribute replacement; :meth:`get_model_object` returns it for `name`.

        Recorded for the packs that read it back; nothing is installed in the network, and our
        samplers take the noise schedule from :attr:`sampling_config` (ModelSamplingDiscrete).
        """
        self.object_patches[name] = obj

    def get_model_object(self, name: str) -> Any:
        """An object patch by name, else the attribute at the dotted path under :attr:`model`."""
        if name in self.object_patches:
            return self.object_patches[name]
        if name == "model_sampling":
            return self.model_sampling
        target: Any = self.model
        for part in name.split("."):
            target = getattr(target, part)
        return target

    @property
    def model_sampling(self) -> DiscreteModelSampling:
        """The noise table and parameterisation this handle samples with."""
        return model_sampling_from_config(self.sampling_config)

    def clone(self) -> ModelHandle:
        """A new handle on the same weights; its patches and settings can change independently."""
        twin = ModelHandle(
            self._shared.unet,
            self.manager,
            self.family,
            self.latent_format,
            self.sampling_config,
            name=self.name,
            shared=self._shared,
        )
        twin.patches = copy_patch_lists(self.patches)
        twin.patches_uuid = self.patches_uuid
        twin.model_options = copy_nested(self.model_options)
        twin.object_patches = dict(self.object_patches)
        return twin

    def with_sampling_config(self, **changes: Any) -> ModelHandle:
        """Clone with some SamplingConfig fields replaced (ModelSamplingDiscrete)."""
        twin = self.clone()
        twin.sampling_config = replace(self.sampling_config, **changes)
        return twin

    def is_clone(self, other: object) -> bool:
        """True when both handles share one network."""
        return isinstance(other, ModelHandle) and self._shared is other._shared

    # weight patches (ComfyUI keys: "diffusion_model.<LDM name>") --------------------------------
    def patch_keys(self) -> set[str]:
        """The state-dict keys that patches may target."""
        return set(self._shared.weights.keys)

    def add_patches(
        self, patches: dict[Any, Any], strength_patch: float = 1.0, strength_model: float = 1.0
    ) -> list[Any]:
        """Record weight patches (call on a clone; nothing touches the weights until a run).

        Values take every form of docs/MODEL_INTERFACE.md §1; returns the keys this model has.
        """
        accepted = record_patches(self.patches, self._shared.weights.keys, patches, strength_patch, strength_model)
        self.patches_uuid = uuid.uuid4()
        return accepted

    def get_key_patches(self, filter_prefix: str | None = None) -> dict[str, list[Any]]:
        """``{key: [(original weight,), *entries]}`` for every key (ComfyUI's merge input)."""
        return key_patches(self._shared.weights, self.patches, filter_prefix)

    def model_state_dict(self, filter_prefix: str | None = None) -> dict[str, torch.Tensor]:
        """The unpatched weights under ComfyUI keys (tensors shared with the network; do not modify)."""
        weights = self._shared.weights
        return {k: weights.original(k) for k in weights.keys if filter_prefix is None or k.startswith(filter_prefix)}

    def patched_state_dict(self, filter_prefix: str | None = None) -> dict[str, torch.Tensor]:
        """The weights with this handle's patches merged (what a save writes); never modified later."""
        self.prepare()
        weights = self._shared.weights
        return {
            k: weights.parameter(k).data
            for k in weights.keys
            if filter_prefix is None or k.startswith(filter_prefix)
        }

    def cache_size_bytes(self) -> int:
        return sum(size for _, size in self.cache_shared_parts())

    def cache_shared_parts(self) -> list[tuple[Any, int]]:
        """What clones share, each counted once by the output cache: the network (with the patched
        copies of its weights while patched) and every patch value (a LoRA stacked on a clone
        shares the first LoRA's tensors)."""
        network = self.manager.size_of(self._shared.unet) + self._shared.weights.patched_bytes()
        return [(self._shared, network), *patch_value_parts(self.patches)]

    # running ------------------------------------------------------------------------------------
    def prepare(self) -> UNetModel:
        """Place the network on the compute device with this handle's patches merged."""
        unet = self.manager.load(self._shared.unet)
        self._shared.weights.apply(self.patches, self.patches_uuid)
        return unet

    def apply_model(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor | None = None,
        concat: torch.Tensor | None = None,
        control: dict[str, list[torch.Tensor | None]] | None = None,
        transformer_options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Raw network output (eps or v) for scaled-and-c_in'd latents ``x`` at float timesteps ``[B]``.

        ``concat`` is the inpainting input ``cat([mask, masked_latent])`` (5 channels); an
        inpainting model called without it sees "inpaint everything" (mask 1, empty latent).
        ``transformer_options`` is ComfyUI's per-call dict (hooks, cond_or_uncond, sigmas); None
        runs this handle's ``model_options["transformer_options"]``.
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
        forward = forward_for(self._shared, unet, getattr(self.manager, "compile_unet", False))
        with torch.no_grad():
            out = forward(
                x_in.to(device, dtype),
                timestep.to(device, torch.float32),
                context.to(device, dtype),
                None if y is None else y.to(device, dtype),
                control,
                self._call_options() if transformer_options is None else transformer_options,
            )
        return out.to(x.device, x.dtype)

    def _call_options(self) -> dict[str, Any]:
        """A per-call copy of the handle's transformer options (the UNet writes position keys into it)."""
        return dict(self.model_options.get("transformer_options", {}))

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
        if self.family == "sd2":  # stable unCLIP: y is the noise-augmented CLIP image embedding
            return self._unclip_y(cond_dict, batch, adm)
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
        if cond_dict.get("unclip_conditioning"):  # SDXL "revision": image embeds replace pooled text
            pooled = revision_pooled(cond_dict["unclip_conditioning"], pooled_width)
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

    def _unclip_y(self, cond_dict: dict[str, Any], batch: int, adm: int) -> torch.Tensor:
        """stable unCLIP ``y`` (zeros without image conditioning, as ComfyUI); merged embeds get 5% noise."""
        entries = cond_dict.get("unclip_conditioning")
        if not entries:
            return torch.zeros(batch, adm)
        augmentor = self._shared.noise_augmentor or NoiseAugmentor(adm // 2)
        return unclip_adm(entries, augmentor, merge_noise=0.05).expand(batch, -1)
