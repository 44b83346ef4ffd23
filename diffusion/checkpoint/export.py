"""Writing weights back in the single-file layouts people download and other tools read.

The inverse of the loaders: a UNet goes under ``model.diffusion_model.``, a VAE under
``first_stage_model.``, text encoders under their family's prefixes — CLIP-L in transformers'
layout, OpenCLIP towers (SD2 ViT-H, SDXL bigG) in OpenCLIP's native layout with q/k/v fused and
the projection stored as a matrix, as the original checkpoints (and ComfyUI's saves) hold them.
Head counts are not recoverable from shapes, so every file also carries ``latentgraph.arch``;
checkpoints get the ``modelspec.*`` fields ComfyUI writes.

Text encoders are handed over per encoder name (``clip_l``/``clip_h``/``clip_g``) in the canonical
layout of :mod:`diffusion.text.convert` (HF names without ``text_model.``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from diffusion.checkpoint.arch import UNET_PREFIX, VAE_PREFIX
from diffusion.models.unet import UNetConfig
from diffusion.patcher import MODEL_KEY_PREFIX, ModelHandle
from diffusion.text.arch import CONTEXT_LENGTH, EncoderArch, family_slots
from diffusion.text.clip import CLIP
from diffusion.vae import VAEHandle

StateDict = dict[str, torch.Tensor]

# Inverse of diffusion.text.convert's OpenCLIP → canonical names.
_OPEN_CLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER = {
    "layer_norm1.weight": "ln_1.weight",
    "layer_norm1.bias": "ln_1.bias",
    "layer_norm2.weight": "ln_2.weight",
    "layer_norm2.bias": "ln_2.bias",
    "self_attn.out_proj.weight": "attn.out_proj.weight",
    "self_attn.out_proj.bias": "attn.out_proj.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
}

MODELSPEC_ARCHITECTURE = {
    "sdxl": "stable-diffusion-xl-v1-base",
    "sdxl-refiner": "stable-diffusion-xl-v1-refiner",
}


@dataclass(frozen=True)
class TextWeights:
    """One text encoder's canonical weights and the architecture facts shapes cannot tell."""

    canonical: Mapping[str, torch.Tensor]
    arch: EncoderArch


def unet_for_checkpoint(unet_sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Prefix-less LDM UNet weights → ``model.diffusion_model.*`` (also ModelSave's layout)."""
    return {UNET_PREFIX + key: value for key, value in unet_sd.items()}


def vae_for_checkpoint(vae_sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Prefix-less LDM VAE weights → ``first_stage_model.*``."""
    return {VAE_PREFIX + key: value for key, value in vae_sd.items()}


def canonical_to_hf(canonical: Mapping[str, torch.Tensor]) -> StateDict:
    """transformers' ``CLIPTextModel`` names (``text_model.*``; the projection stays at the top)."""
    return {
        (key if key == "text_projection.weight" else "text_model." + key): value
        for key, value in canonical.items()
    }


def canonical_to_open_clip(canonical: Mapping[str, torch.Tensor]) -> StateDict:
    """OpenCLIP's native text-tower names: q/k/v fused into ``in_proj``, projection as ``x @ P``."""
    out: StateDict = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in canonical.items():
        if key in _OPEN_CLIP_TOP:
            out[_OPEN_CLIP_TOP[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.t().contiguous()
        elif key.startswith("encoder.layers."):
            index, rest = key[len("encoder.layers.") :].split(".", 1)
            block = f"transformer.resblocks.{index}."
            if rest in _OPEN_CLIP_LAYER:
                out[block + _OPEN_CLIP_LAYER[rest]] = value
            elif rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                part, kind = rest.split(".")[1:]
                fused.setdefault(f"{block}attn.in_proj_{kind}", {})[part] = value
            else:
                raise ValueError(f"text-encoder weight {key!r} has no OpenCLIP name")
        else:
            raise ValueError(f"text-encoder weight {key!r} has no OpenCLIP name")
    for name, parts in fused.items():
        if set(parts) != {"q_proj", "k_proj", "v_proj"}:
            raise ValueError(f"{name}: q, k and v are needed to fuse the attention input, got {sorted(parts)}")
        out[name] = torch.cat([parts["q_proj"], parts["k_proj"], parts["v_proj"]], dim=0)
    return out


def text_for_checkpoint(family: str, encoders: Mapping[str, TextWeights]) -> StateDict:
    """The family's text encoders under their checkpoint prefixes and layouts (ComfyUI's save layout)."""
    out: StateDict = {}
    for slot in family_slots(family):
        if slot.name not in encoders:
            raise ValueError(f"a {family} checkpoint needs the {slot.name} text encoder")
        canonical = encoders[slot.name].canonical
        if slot.layout == "hf":
            local = canonical_to_hf(canonical)
            # Released SD1/SDXL files carry the position-id buffer; some loaders expect it.
            local["text_model.embeddings.position_ids"] = torch.arange(CONTEXT_LENGTH, dtype=torch.int64)[None]
        else:
            local = canonical_to_open_clip(canonical)
        out.update({slot.prefix + key: value for key, value in local.items()})
    return out


def unet_arch(config: UNetConfig) -> dict[str, int]:
    """The head layout of a UNet as ``latentgraph.arch`` states it."""
    if config.num_heads > 0:
        return {"num_heads": config.num_heads}
    return {"num_head_channels": config.num_head_channels}


def text_arch(encoders: Mapping[str, TextWeights]) -> dict[str, dict[str, Any]]:
    """Per-encoder heads and activation as ``latentgraph.arch``'s ``"text"`` part states them."""
    return {name: {"heads": w.arch.heads, "hidden_act": w.arch.hidden_act} for name, w in encoders.items()}


def arch_metadata(
    family: str | None = None,
    prediction: str | None = None,
    unet: UNetConfig | None = None,
    text: Mapping[str, TextWeights] | None = None,
) -> dict[str, str]:
    """The ``latentgraph.arch`` entry for whatever parts a file holds."""
    arch: dict[str, Any] = {}
    if family is not None:
        arch["family"] = family
    if prediction is not None:
        arch["prediction"] = prediction
    if unet is not None:
        arch["unet"] = unet_arch(unet)
    if text:
        arch["text"] = text_arch(text)
    return {"latentgraph.arch": json.dumps(arch, sort_keys=True)}


def model_markers(prediction: str, zero_terminal_snr: bool) -> StateDict:
    """The marker tensors ComfyUI writes for the model's schedule (``v_pred``, ``ztsnr``)."""
    markers: StateDict = {}
    if prediction == "v_prediction":
        markers["v_pred"] = torch.tensor([])
        if zero_terminal_snr:
            markers["ztsnr"] = torch.tensor([])
    return markers


def modelspec_metadata(family: str, prediction: str, title: str) -> dict[str, str]:
    """The ``modelspec.*`` fields ComfyUI's CheckpointSave writes (architecture only for SDXL)."""
    metadata: dict[str, str] = {}
    architecture = MODELSPEC_ARCHITECTURE.get(family)
    if architecture is not None:
        metadata.update(
            {
                "modelspec.architecture": architecture,
                "modelspec.sai_model_spec": "1.0.0",
                "modelspec.implementation": "sgm",
                "modelspec.title": title,
            }
        )
    metadata["modelspec.predict_key"] = "v" if prediction == "v_prediction" else "epsilon"
    return metadata


def standalone(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """CPU tensors that each own their storage exactly, as safetensors requires.

    Loaded weights may be views (OpenCLIP q/k/v are row slices of one fused tensor) or share one
    storage; those are copied, every other tensor is written as it is.
    """
    seen: set[int] = set()
    out: StateDict = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu")
        storage = tensor.untyped_storage()
        whole = tensor.is_contiguous() and tensor.storage_offset() == 0 and (
            storage.nbytes() == tensor.numel() * tensor.element_size()
        )
        if not whole or storage.data_ptr() in seen:
            tensor = tensor.contiguous().clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def safetensors_file_bytes(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """The bytes of a ``.safetensors`` file (written atomically by the caller)."""
    return safetensors_bytes(standalone(state_dict), metadata={str(k): str(v) for k, v in metadata.items()})


# --- reading the (patched) weights out of MODEL / CLIP / VAE values ----------------------------


def model_unet_weights(model: ModelHandle) -> StateDict:
    """The UNet weights a MODEL runs with (its patches merged), prefix-less LDM names, storage dtype."""
    patched = model.patched_state_dict(MODEL_KEY_PREFIX)
    return {key[len(MODEL_KEY_PREFIX) :]: value.detach() for key, value in patched.items()}


def clip_text_weights(clip: CLIP) -> dict[str, TextWeights]:
    """Each encoder's canonical weights as the CLIP runs them (patches merged), storage dtype."""
    merged = clip.get_sd()
    result: dict[str, TextWeights] = {}
    for encoder in clip.encoders.values():
        prefix = encoder.key_prefix
        canonical = {
            key[len(prefix) :].removeprefix("text_model."): value.detach()
            for key, value in merged.items()
            if key.startswith(prefix)
        }
        result[encoder.slot.name] = TextWeights(canonical, encoder.arch)
    return result


def vae_weights(vae: VAEHandle) -> StateDict:
    """The VAE's prefix-less LDM weights (attention weights as 1×1 convolutions, as LDM stores them)."""
    return {key: value.detach() for key, value in vae.model.state_dict().items()}


def checkpoint_state_dict(model: ModelHandle, clip: CLIP | None, vae: VAEHandle | None) -> StateDict:
    """A whole single-file checkpoint (ComfyUI's CheckpointSave layout); ModelSave passes no CLIP/VAE."""
    state = unet_for_checkpoint(model_unet_weights(model))
    if clip is not None:
        if clip.family != model.family:
            raise ValueError(f"the CLIP is {clip.family}, the MODEL {model.family}: one checkpoint holds one family")
        state.update(text_for_checkpoint(clip.family, clip_text_weights(clip)))
    if vae is not None:
        state.update(vae_for_checkpoint(vae_weights(vae)))
    config = model.sampling_config
    state.update(model_markers(config.prediction, config.zero_terminal_snr))
    return state


def checkpoint_metadata(model: ModelHandle, clip: CLIP | None, title: str) -> dict[str, str]:
    """``latentgraph.arch`` plus ComfyUI's ``modelspec.*`` fields for a checkpoint of `model`."""
    prediction = model.sampling_config.prediction
    text = clip_text_weights(clip) if clip is not None else None
    metadata = arch_metadata(model.family, prediction, model.unet_config, text)
    metadata.update(modelspec_metadata(model.family, prediction, title))
    return metadata


def clip_files(clip: CLIP) -> dict[str, tuple[StateDict, dict[str, str]]]:
    """CLIPSave's files: per encoder name, its HF-layout weights and ``latentgraph.arch``."""
    return {
        name: (canonical_to_hf(weights.canonical), arch_metadata(text={name: weights}))
        for name, weights in clip_text_weights(clip).items()
    }
