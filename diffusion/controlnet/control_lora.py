"""Control-LoRA (Stability): a ControlNet stored as a low-rank delta on the base model's UNet.

The file holds full tensors for what the UNet lacks (hint encoder, zero convs, and usually norms
and biases) and ``<module>.up`` / ``<module>.down`` factors for the copied encoder weights. As in
ComfyUI the network is assembled when sampling starts (``pre_run``), from the UNet being sampled:
its weights, then the file's tensors, each low-rank pair merged as ``W + up·down``. The result is
kept per model, so later runs and copies reuse it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from diffusion.checkpoint.loader import adopt_state_dict
from diffusion.controlnet.control import ControlBase, ControlNet
from diffusion.controlnet.formats import ControlNetError
from diffusion.controlnet.network import ControlNetConfig, ControlNetModel
from diffusion.memory import ModelManager

MARKER = "lora_controlnet"
BASE_UNET_PREFIX = "diffusion_model."


class ControlLora(ControlNet):
    """A CONTROL_NET value whose network exists once a model is known (see the module docstring)."""

    def __init__(self, control_weights: dict[str, torch.Tensor], manager: ModelManager) -> None:
        sdxl = "zero_convs.9.0.weight" not in control_weights  # SDXL encoders have 9 blocks
        super().__init__(None, manager, "sdxl" if sdxl else "sd1")  # type: ignore[arg-type]
        if not sdxl:
            self.compatible_families = ("sd1", "sd2")
        self.control_weights = control_weights
        # Shared by copies: (id(UNet), patch set) → (UNet, network); the UNet is kept to pin its id.
        self._built: dict[tuple, tuple[Any, ControlNetModel]] = {}

    def copy_to(self, other: ControlBase) -> None:
        super().copy_to(other)
        if isinstance(other, ControlLora):
            other.control_weights = self.control_weights
            other._built = self._built

    def copy(self) -> ControlBase:
        other = ControlLora(self.control_weights, self.manager)
        self.copy_to(other)
        return other

    def pre_run(self, model: Any, percent_to_sigma: Callable[[float], float]) -> None:
        super().pre_run(model, percent_to_sigma)
        unet = model.diffusion_model
        key = (id(unet), getattr(model, "patches_uuid", None))
        built = self._built.get(key)
        if built is None or built[0] is not unet:
            built = (unet, self._assemble(model))
            self._built.clear()  # one model at a time: drop networks built for earlier models
            self._built[key] = built
        self.network = built[1]

    def _assemble(self, model: Any) -> ControlNetModel:
        weights = self.control_weights
        hint = [weights[f"input_hint_block.{i}.weight"] for i in range(0, 64, 2)
                if f"input_hint_block.{i}.weight" in weights]
        widths = (int(hint[0].shape[0]),) + tuple(int(conv.shape[0]) for conv in hint[2:-1:2])
        unet_config = dataclasses.replace(model.unet_config, in_channels=4)
        config = ControlNetConfig(unet=unet_config, hint_channels=int(hint[0].shape[1]), hint_widths=widths)
        with torch.device("meta"):
            network = ControlNetModel(config)
        wanted = set(network.state_dict())
        dtype = self.manager.unet_dtype()
        base = model.patched_state_dict(BASE_UNET_PREFIX)
        tensors = {k[len(BASE_UNET_PREFIX):]: v.float() for k, v in base.items() if k[len(BASE_UNET_PREFIX):] in wanted}
        for key, tensor in weights.items():
            if key == MARKER or "__" in key or key.endswith(".down"):
                continue
            if key.endswith(".up"):
                name = key[: -len(".up")] + ".weight"
                if name not in tensors:
                    raise ControlNetError(f"Control-LoRA factor {key!r} has no base weight in this model")
                down = weights[key[: -len(".up")] + ".down"]
                delta = tensor.float().flatten(1) @ down.float().flatten(1)
                tensors[name] = tensors[name] + delta.reshape(tensors[name].shape)
            elif key.endswith((".weight", ".bias")):
                tensors[key] = tensor.float()
        try:
            adopt_state_dict(network, {k: v.to(self.manager.storage_device, dtype) for k, v in tensors.items()},
                             "Control-LoRA")
        except (ValueError, RuntimeError) as exc:
            raise ControlNetError(f"this Control-LoRA does not fit the {model.family} model being sampled: {exc}") from exc
        self.manager.register(network, "Control-LoRA")
        return network

    def get_models(self) -> list:
        previous = self.previous_controlnet.get_models() if self.previous_controlnet is not None else []
        return previous + ([self.network] if self.network is not None else [])

    def cache_size_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.control_weights.values())

    def cache_shared_parts(self) -> tuple:
        return ((self.control_weights, self.cache_size_bytes()),)
