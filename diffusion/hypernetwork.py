"""A1111 hypernetworks: small MLPs that rewrite the attention key and value inputs.

File format (AUTOMATIC1111 modules/hypernetworks/hypernetwork.py, a pickle read with
``torch.load(weights_only=True)``): ``{width: [k_state, v_state], …}`` plus the flags
``layer_structure``, ``activation_func``, ``is_layer_norm``, ``use_dropout``, ``activate_output``,
``last_layer_dropout``, ``dropout_structure``. Each state dict holds the ``linear.<i>.weight/bias``
of one ``Sequential``: Linear → activation (not after the last Linear unless ``activate_output``)
→ LayerNorm (when ``is_layer_norm``) → Dropout. For an attention whose key input has width w,
``k ← k + strength·mlp_k(k)`` and ``v ← v + strength·mlp_v(v)`` (A1111 and ComfyUI patch both the
self- and cross-attention). Dropout is a training-time layer and is not applied (A1111's inference).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "swish": nn.Hardswish,  # A1111's name for it
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softsign": nn.Softsign,
    "mish": nn.Mish,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
_PARAM = re.compile(r"linear\.(\d+)\.(weight|bias)$")


class HypernetworkError(ValueError):
    """A hypernetwork file that cannot be read or has a structure we do not know."""


def _mlp(state: Mapping[str, torch.Tensor], activation: str, layer_norm: bool, activate_output: bool) -> nn.Sequential:
    """One key or value MLP from its ``linear.<i>.*`` tensors (indices give the layer order)."""
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in state.items():
        match = _PARAM.search(name)
        if match is None:
            raise HypernetworkError(f"unexpected tensor {name!r} in a hypernetwork layer")
        layers.setdefault(int(match.group(1)), {})[match.group(2)] = tensor.float()
    linears = [index for index, p in sorted(layers.items()) if p["weight"].dim() == 2]
    modules: list[nn.Module] = []
    for index, params in sorted(layers.items()):
        weight, bias = params["weight"], params.get("bias")
        if weight.dim() == 2:
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            linear.load_state_dict(params)
            modules.append(linear)
            if index != linears[-1] or activate_output:
                modules.append(ACTIVATIONS[activation]())
        elif layer_norm:
            norm = nn.LayerNorm(weight.shape[0])
            norm.load_state_dict(params)
            modules.append(norm)
        else:
            raise HypernetworkError("a hypernetwork layer norm found although is_layer_norm is off")
    return nn.Sequential(*modules).eval().requires_grad_(False)


class Hypernetwork:
    """The key/value MLPs per attention width; called as an attn1/attn2 patch ``(q, k, v, extra)``."""

    def __init__(self, mlps: dict[int, tuple[nn.Module, nn.Module]], strength: float) -> None:
        self.mlps = mlps
        self.strength = strength

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra_options: dict[str, Any]):
        pair = self.mlps.get(k.shape[-1])
        if pair is None:
            return q, k, v
        mlp_k, mlp_v = pair
        with torch.no_grad():
            k = k + self.strength * mlp_k.to(k.device, k.dtype)(k)
            v = v + self.strength * mlp_v.to(v.device, v.dtype)(v)
        return q, k, v

    def to(self, device: torch.device | str) -> Hypernetwork:
        """Move the MLPs (ComfyUI's model management calls ``to`` on patches)."""
        for mlp_k, mlp_v in self.mlps.values():
            mlp_k.to(device)
            mlp_v.to(device)
        return self


def hypernetwork_from_state(data: Mapping[Any, Any], strength: float, name: str = "hypernetwork") -> Hypernetwork:
    """Build the hypernetwork described by an A1111 file's contents."""
    activation = str(data.get("activation_func") or "linear").lower()
    if activation not in ACTIVATIONS:
        raise HypernetworkError(
            f"{name}: activation {activation!r} is not supported (known: {', '.join(sorted(ACTIVATIONS))})"
        )
    layer_norm = bool(data.get("is_layer_norm", False))
    activate_output = bool(data.get("activate_output", False))
    mlps: dict[int, tuple[nn.Module, nn.Module]] = {}
    for key, value in data.items():
        if not isinstance(key, int) and not (isinstance(key, str) and key.isdigit()):
            continue
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise HypernetworkError(f"{name}: width {key} must hold [key_layers, value_layers]")
        mlps[int(key)] = tuple(_mlp(state, activation, layer_norm, activate_output) for state in value)
    if not mlps:
        raise HypernetworkError(f"{name}: no hypernetwork layers found (is it an A1111 hypernetwork file?)")
    return Hypernetwork(mlps, strength)


def load_hypernetwork(path: str | Path, strength: float) -> Hypernetwork:
    """Read an A1111 ``.pt`` hypernetwork with the weights_only unpickler (never executes code)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        raise HypernetworkError(f"{path.name}: A1111 hypernetworks are .pt files (nested per-width layers)")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises many types
        raise HypernetworkError(f"{path.name}: cannot be read without unsafe unpickling ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise HypernetworkError(f"{path.name}: expected a dict, found {type(data).__name__}")
    return hypernetwork_from_state(data, strength, path.name)


def random_hypernetwork_state(widths: list[int], layer_structure: tuple[float, ...] = (1, 2, 1), *,
                              activation: str = "relu", layer_norm: bool = True, seed: int = 0) -> dict[Any, Any]:
    """An A1111-layout hypernetwork with random weights (tests and demos), dropout flags on."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[Any, Any] = {
        "layer_structure": list(layer_structure), "activation_func": activation, "is_layer_norm": layer_norm,
        "use_dropout": True, "activate_output": False, "last_layer_dropout": False,
        "dropout_structure": [0.0] + [0.3] * (len(layer_structure) - 2) + [0.0], "name": "tiny", "step": 0,
    }
    for width in widths:
        pair = []
        for _ in range(2):
            layers: dict[str, torch.Tensor] = {}
            index = 0
            for i in range(len(layer_structure) - 1):
                a, b = int(width * layer_structure[i]), int(width * layer_structure[i + 1])
                layers[f"linear.{index}.weight"] = 0.2 * torch.randn(b, a, generator=generator) / a**0.5
                layers[f"linear.{index}.bias"] = 0.05 * torch.randn(b, generator=generator)
                index += 1
                last = i == len(layer_structure) - 2
                if activation != "linear" and not last:
                    index += 1  # the activation module's slot
                if layer_norm:
                    layers[f"linear.{index}.weight"] = 1.0 + 0.1 * torch.randn(b, generator=generator)
                    layers[f"linear.{index}.bias"] = 0.05 * torch.randn(b, generator=generator)
                    index += 1
                if not last:
                    index += 1  # dropout slot
            pair.append(layers)
        state[width] = pair
    return state
