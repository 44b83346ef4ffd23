"""Reading LoRA files and turning their tensors into patches for model keys.

``load_lora(state_dict, key_map) -> (patches, unused_keys)``: every module name of the key map is
tried against each algorithm's tensor names; what no algorithm claimed is returned so the caller
can report it (never silently dropped). Files are read with safetensors; ``.pt``/``.ckpt``/``.bin``
only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from diffusion.lora.adapters import DiffAdapter, LoRAAdapter, SetAdapter
from diffusion.lora.base import DeltaAdapter, StateDict
from diffusion.lora.lycoris import LYCORIS_ADAPTERS

ADAPTERS = (LoRAAdapter, *LYCORIS_ADAPTERS)
# Whole-tensor forms: suffix → (adapter, whether it targets the module's bias instead of its weight).
_WHOLE_TENSOR = {
    ".diff": (DiffAdapter, False),
    ".w_norm": (DiffAdapter, False),
    ".diff_b": (DiffAdapter, True),
    ".b_norm": (DiffAdapter, True),
    ".set_weight": (SetAdapter, False),
}


class LoRAError(ValueError):
    """A LoRA file that cannot be applied: unreadable, no known key, or made for another model."""


def read_lora_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a LoRA file; pickles only through the weights_only unpickler (never executed)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises many types
        raise LoRAError(
            f"{path.name}: cannot be read without unsafe unpickling ({type(exc).__name__}); convert it to .safetensors"
        ) from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise LoRAError(f"{path.name}: expected a dict of tensors, found {type(data).__name__}")
    return {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}


def load_lora(state_dict: StateDict, key_map: Mapping[str, str]) -> tuple[dict[str, DeltaAdapter], list[str]]:
    """``({model key: adapter}, [file keys no adapter used])`` for one file and one key map."""
    patches: dict[str, DeltaAdapter] = {}
    used: set[str] = set()
    for name, model_key in key_map.items():
        alpha_key, dora_key = f"{name}.alpha", f"{name}.dora_scale"
        alpha, dora_scale = state_dict.get(alpha_key), state_dict.get(dora_key)
        for kind in ADAPTERS:
            adapter = kind.load(name, state_dict, alpha, dora_scale)
            if adapter is not None:
                patches[model_key] = adapter
                used.update(adapter.loaded_keys)
                used.update(key for key in (alpha_key, dora_key) if key in state_dict)
                break
        for suffix, (kind, on_bias) in _WHOLE_TENSOR.items():
            file_key = name + suffix
            if file_key in state_dict:
                target = model_key.removesuffix(".weight") + ".bias" if on_bias else model_key
                patches[target] = kind((file_key,), state_dict[file_key])
                used.add(file_key)
    return patches, [key for key in state_dict if key not in used]


# Cross-attention context width → family, read from an attn2 to_k/to_v "down" matrix.
_CONTEXT_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl-refiner"}
_FAMILY_NAMES = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL", "sdxl-refiner": "SDXL refiner"}


def family_name(family: str) -> str:
    return _FAMILY_NAMES.get(family, family)


def guess_family(state_dict: StateDict) -> str | None:
    """Which model family a LoRA file was trained for, from its text-context width or key names."""
    for key, tensor in state_dict.items():
        if ("attn2_to_k" in key or "attn2.to_k" in key) and key.endswith(("lora_down.weight", "lora_A.weight")):
            family = _CONTEXT_FAMILY.get(tensor.shape[-1] if tensor.dim() == 2 else -1)
            if family is not None:
                return family
    keys = list(state_dict)
    if any(key.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for key in keys):
        return "sdxl"
    if any(key.startswith(("lora_unet_input_blocks_", "lora_unet_output_blocks_")) for key in keys):
        return "sdxl"
    return None


def fit_patches(
    lora_name: str,
    state_dict: StateDict,
    patches: Mapping[str, DeltaAdapter],
    shapes: Mapping[str, torch.Size],
    unused: list[str],
    family: str,
) -> tuple[dict[str, DeltaAdapter], list[str]]:
    """The patches whose shapes fit the model, and the file keys of those that do not.

    Raises LoRAError for a file made for another family, one with no key this model knows, or one
    of whose weights none fits. A few misfits in a file of this family are skipped and reported
    with the unused keys (ComfyUI skips them with a log line).
    """
    misfits = {key for key, adapter in patches.items() if key in shapes and not adapter.fits(shapes[key])}
    guess = guess_family(state_dict)
    other_family = guess is not None and guess != family and bool(unused or misfits or not patches)
    if other_family or (patches and len(misfits) == len(patches)):
        looks = f"it looks like an {family_name(guess)} LoRA" if guess else "it was made for another model"
        example = f" (e.g. {min(misfits)})" if misfits else ""
        detail = f"; {len(misfits)} of {len(patches)} weights have other shapes{example}" if misfits else ""
        raise LoRAError(f"LoRA {lora_name!r} does not fit this {family_name(family)} model: {looks}{detail}")
    if not patches:
        raise LoRAError(
            f"LoRA {lora_name!r} has no key this {family_name(family)} model knows "
            f"({len(state_dict)} keys, e.g. {sorted(state_dict)[:3]}); is it a LoRA file?"
        )
    fitting = {key: adapter for key, adapter in patches.items() if key not in misfits}
    return fitting, sorted(file_key for key in misfits for file_key in patches[key].loaded_keys)


def describe_unused(unused: list[str], limit: int = 5) -> str:
    """One line for the node: how many file keys were not applied, with examples."""
    examples = ", ".join(sorted(unused)[:limit])
    more = "…" if len(unused) > limit else ""
    return f"{len(unused)} key{'s' if len(unused) != 1 else ''} not applied: {examples}{more}"
