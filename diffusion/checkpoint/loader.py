"""Turning a model file into ready-to-run handles: MODEL, CLIP, VAE.

Networks are built on the meta device and then adopt the file's tensors (``assign=True``), so a
safetensors weight already in the compute dtype stays a view into the memory map — no copy and
no second allocation; only a dtype change (e.g. fp16 file → fp32 CPU compute) materialises.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from diffusion.checkpoint.arch import TEXT_PREFIXES, UNET_PREFIX, VAE_PREFIX, Family
from diffusion.checkpoint.detect import CheckpointInfo, detect, infer_vae_config, sub_state_dict
from diffusion.checkpoint.diffusers_unet import diffusers_unet_to_ldm, is_diffusers_unet
from diffusion.checkpoint.diffusers_vae import diffusers_vae_to_ldm, is_diffusers_vae
from diffusion.checkpoint.errors import CheckpointError
from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
from diffusion.clip_vision.unclip import noise_augmentor_from_checkpoint
from diffusion.latent_formats import latent_format_for_family
from diffusion.memory import ModelManager
from diffusion.models.unet import UNetConfig, UNetModel
from diffusion.models.vae import AutoencoderKL, VAEConfig
from diffusion.patcher import ModelHandle, SamplingConfig
from diffusion.vae import VAEHandle

log = logging.getLogger(__name__)

_VAE_ATTENTION_WEIGHTS = ("q.weight", "k.weight", "v.weight", "proj_out.weight")


class LoadedCheckpoint(NamedTuple):
    """What CheckpointLoader returns: the three handles plus what was detected."""

    model: ModelHandle
    clip: Any | None
    vae: VAEHandle | None
    info: CheckpointInfo


def adopt_state_dict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Load tensors into a meta-built module by assignment; any key mismatch is a CheckpointError."""
    missing, unexpected = module.load_state_dict(state_dict, strict=False, assign=True)
    if missing or unexpected:
        raise CheckpointError(
            f"{what} weights do not match the inferred architecture: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    module.eval()
    module.requires_grad_(False)


def _cast(
    state_dict: dict[str, torch.Tensor], dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    return {key: value.to(device=device, dtype=dtype) for key, value in state_dict.items()}


def build_unet(
    config: UNetConfig, unet_sd: dict[str, torch.Tensor], dtype: torch.dtype, device: torch.device
) -> UNetModel:
    """A UNetModel holding ``unet_sd`` (prefix-less LDM keys) in ``dtype`` on ``device``."""
    with torch.device("meta"):
        unet = UNetModel(config)
    adopt_state_dict(unet, _cast(unet_sd, dtype, device), "UNet")
    return unet


def build_vae(vae_sd: dict[str, torch.Tensor], dtype: torch.dtype, device: torch.device) -> AutoencoderKL:
    """An AutoencoderKL from prefix-less LDM VAE keys (Linear-shaped attention weights accepted)."""
    config = infer_vae_config(vae_sd)
    fixed = dict(vae_sd)
    for key, value in vae_sd.items():
        if ".attn_1." in key and key.endswith(_VAE_ATTENTION_WEIGHTS) and value.ndim == 2:
            fixed[key] = value[:, :, None, None]
    with torch.device("meta"):
        vae = AutoencoderKL(config)
    adopt_state_dict(vae, _cast(fixed, dtype, device), "VAE")
    return vae


def build_meta_unet(config: UNetConfig) -> UNetModel:
    """A weightless UNet (meta device) for key-set and parameter-count checks."""
    with torch.device("meta"):
        return UNetModel(config)


def build_meta_vae(config: VAEConfig | None = None) -> AutoencoderKL:
    with torch.device("meta"):
        return AutoencoderKL(config)


def _load_clip(
    state_dict: dict[str, torch.Tensor], family: Family, arch: dict[str, Any], manager: ModelManager
) -> Any | None:
    """The family's text encoders via diffusion.text; None when the file carries none (as ComfyUI)."""
    if not any(key.startswith(TEXT_PREFIXES[family]) for key in state_dict):
        log.warning("checkpoint has no text encoder; CLIP output is None")
        return None
    from diffusion.text.loader import load_clip

    return load_clip(state_dict, family, arch, manager=manager)


def load_checkpoint(
    path: str | Path,
    manager: ModelManager,
    *,
    load_clip: bool = True,
    load_vae: bool = True,
    overrides: dict[str, Any] | None = None,
) -> LoadedCheckpoint:
    """Load a single-file SD checkpoint (SD1.x, SD2.x, SDXL, refiner; inpainting variants).

    ``overrides`` may set ``prediction`` (``eps``/``v_prediction``), ``zero_terminal_snr`` or
    assert the ``family``; head counts come from family defaults or the file's
    ``latentgraph.arch`` metadata.
    """
    path = Path(path)
    key = _load_key(path, "checkpoint", load_clip, load_vae, overrides)
    shared = manager.reuse_load(key) if key is not None else None
    if shared is not None:
        return _reuse_checkpoint(shared, manager, path)
    state_dict, metadata = read_state_dict(path)
    arch = parse_arch_metadata(metadata)
    unet_sd = sub_state_dict(state_dict, UNET_PREFIX)
    if not unet_sd:
        raise CheckpointError(
            f"{path.name} has no UNet weights ({UNET_PREFIX}*): not a full checkpoint "
            "(use the UNET, VAE or CLIP loaders for component files)"
        )
    vae_sd = sub_state_dict(state_dict, VAE_PREFIX) if load_vae else {}
    info = detect(state_dict, unet_sd, vae_sd or None, arch, overrides)
    latent_format = latent_format_for_family(info.family)

    unet = build_unet(info.unet, unet_sd, manager.unet_dtype(), manager.storage_device)
    model = ModelHandle(
        unet,
        manager,
        info.family,
        latent_format,
        SamplingConfig(prediction=info.prediction, zero_terminal_snr=info.zero_terminal_snr),
        name=path.name,
    )
    if info.family == "sd2" and info.unet.adm_in_channels is not None:
        model.shared_network.noise_augmentor = noise_augmentor_from_checkpoint(state_dict, info.unet.adm_in_channels)
    vae = None
    if vae_sd:
        vae = VAEHandle(build_vae(vae_sd, manager.vae_dtype(), manager.storage_device), manager, path.name)
    clip = _load_clip(state_dict, info.family, arch, manager) if load_clip else None
    if key is not None:
        model.shared_network.load_info = info
        manager.remember_load(key, model.shared_network, clip, vae)
    return LoadedCheckpoint(model, clip, vae, info)


def _load_key(path: Path, kind: str, *options: Any) -> tuple | None:
    """Identity of one load of one file version; None when the file cannot be stat'ed."""
    try:
        stat = path.resolve().stat()
    except OSError:
        return None
    return (kind, str(path.resolve()), stat.st_mtime_ns, stat.st_size, repr(options))


def _reuse_checkpoint(shared: tuple[Any, ...], manager: ModelManager, path: Path) -> LoadedCheckpoint:
    network, clip, vae = shared
    info: CheckpointInfo = network.load_info
    model = ModelHandle(
        network.unet,
        manager,
        info.family,
        latent_format_for_family(info.family),
        SamplingConfig(prediction=info.prediction, zero_terminal_snr=info.zero_terminal_snr),
        name=path.name,
        shared=network,
    )
    return LoadedCheckpoint(model, clip.clone() if clip is not None else None, vae, info)


def load_unet_file(
    path: str | Path, manager: ModelManager, overrides: dict[str, Any] | None = None
) -> ModelHandle:
    """A UNet-only file as a MODEL: LDM keys (bare or under ``model.diffusion_model.``) or diffusers'."""
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    arch = parse_arch_metadata(metadata)
    unet_sd = sub_state_dict(state_dict, UNET_PREFIX) or state_dict
    if is_diffusers_unet(unet_sd):
        unet_sd = diffusers_unet_to_ldm(unet_sd)
    if "input_blocks.0.0.weight" not in unet_sd:
        raise CheckpointError(f"{path.name} is not an SD UNet (neither LDM nor diffusers UNet keys)")
    info = detect(state_dict, unet_sd, None, arch, overrides)
    unet = build_unet(info.unet, unet_sd, manager.unet_dtype(), manager.storage_device)
    return ModelHandle(
        unet,
        manager,
        info.family,
        latent_format_for_family(info.family),
        SamplingConfig(prediction=info.prediction, zero_terminal_snr=info.zero_terminal_snr),
        name=path.name,
    )


def load_vae_file(path: str | Path, manager: ModelManager) -> VAEHandle:
    """A standalone VAE file as a VAE: LDM keys (bare or under ``first_stage_model.``) or diffusers'.

    A VAE works on raw latents, so it needs no family: the MODEL's latent format scales them.
    """
    path = Path(path)
    state_dict, _ = read_state_dict(path)
    vae_sd = sub_state_dict(state_dict, VAE_PREFIX) or state_dict
    if is_diffusers_vae(vae_sd):
        vae_sd = diffusers_vae_to_ldm(vae_sd)
    if "encoder.conv_in.weight" not in vae_sd or "encoder.down.0.block.0.conv1.weight" not in vae_sd:
        raise CheckpointError(f"{path.name} is not an SD VAE (neither LDM nor diffusers AutoencoderKL keys)")
    model = build_vae(vae_sd, manager.vae_dtype(), manager.storage_device)
    return VAEHandle(model, manager, path.name)
