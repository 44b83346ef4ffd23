"""Reading a ControlNet or T2I-Adapter file into a CONTROL_NET value (ComfyUI's ``load_controlnet``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
from diffusion.checkpoint.loader import adopt_state_dict
from diffusion.controlnet.control import ControlBase, ControlNet
from diffusion.controlnet.formats import (
    ControlNetError,
    classify,
    diffusers_controlnet_to_ldm,
    infer_controlnet_config,
    ldm_controlnet_tensors,
)
from diffusion.controlnet.network import ControlNetModel
from diffusion.memory import ModelManager

BASE_UNET_PREFIX = "diffusion_model."


def load_controlnet(path: str | Path, manager: ModelManager, model: Any | None = None) -> ControlBase:
    """A ControlNet or T2I-Adapter from a file; ``model`` (a ModelHandle) is needed for diff ControlNets.

    A file name ending in ``_shuffle`` turns on global average pooling of the residuals (ComfyUI).
    """
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    control = load_controlnet_state_dict(state_dict, manager, model, parse_arch_metadata(metadata))
    if path.stem.endswith("_shuffle"):
        control.global_average_pooling = True
    return control


def load_controlnet_state_dict(state_dict: dict[str, torch.Tensor], manager: ModelManager,
                               model: Any | None = None, arch: dict[str, Any] | None = None) -> ControlBase:
    arch = arch or {}
    kind = classify(state_dict)
    if kind == "control-lora":
        from diffusion.controlnet.control_lora import ControlLora

        return ControlLora(state_dict, manager)
    if kind == "t2i-adapter":
        from diffusion.controlnet.t2i import load_t2i_adapter

        return load_t2i_adapter(state_dict, manager)
    if kind == "controlnet-diffusers":
        tensors, difference = diffusers_controlnet_to_ldm(state_dict), False
    else:
        tensors, difference = ldm_controlnet_tensors(state_dict)
    config, family = infer_controlnet_config(tensors, arch)
    if difference:
        tensors = _add_base_weights(tensors, model, family)
    dtype = manager.unet_dtype()
    with torch.device("meta"):
        network = ControlNetModel(config)
    tensors = {k: v.to(device=manager.storage_device, dtype=dtype) for k, v in tensors.items()}
    adopt_state_dict(network, tensors, "ControlNet")
    manager.register(network, f"ControlNet ({family})")
    return ControlNet(network, manager, family)


def _add_base_weights(tensors: dict[str, torch.Tensor], model: Any | None, family: str) -> dict[str, torch.Tensor]:
    """A "difference" ControlNet stores ControlNet − UNet: add the base model's (unpatched) weights."""
    if model is None:
        raise ControlNetError("this is a difference ControlNet: load it with DiffControlNetLoader and a model")
    if getattr(model, "family", family) != family:
        raise ControlNetError(f"this difference ControlNet was made for {family} models, not {model.family}")
    base = model.model_state_dict(BASE_UNET_PREFIX)
    out = {}
    for key, tensor in tensors.items():
        weight = base.get(BASE_UNET_PREFIX + key)
        if weight is not None and weight.shape == tensor.shape:
            out[key] = tensor.float() + weight.float().to(tensor.device)
        else:
            out[key] = tensor
    return out
