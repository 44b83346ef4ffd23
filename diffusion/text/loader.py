"""Load text encoders from a checkpoint's state dict or from separate text-encoder files into a CLIP.

`load_clip` reads only the keys under the family's text-encoder prefixes (the state dict may be a
lazy mapping over a memory-mapped safetensors file). `load_clip_from_state_dicts` serves the
CLIPLoader/DualCLIPLoader nodes: each file may be in HF layout (``text_model.*`` or flattened) or
OpenCLIP native layout, with or without a wrapping prefix; which encoder it is follows from its depth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from diffusion.text.arch import (
    FAMILY_SLOTS,
    EncoderSlot,
    TextEncoderError,
    family_slots,
    text_overrides,
)
from diffusion.text.clip import CLIP
from diffusion.text.convert import hf_to_canonical, infer_arch, open_clip_to_canonical
from diffusion.text.encoder import TextEncoder
from diffusion.text.model import load_canonical
from diffusion.text.tokenizer import EmbeddingResolver

StateDict = Mapping[str, torch.Tensor]

_HF_PROBE = "encoder.layers.0.layer_norm1.weight"
_OPEN_CLIP_PROBE = "transformer.resblocks.0.ln_1.weight"
_NAME_BY_DEPTH = {12: "clip_l", 24: "clip_h", 32: "clip_g"}
_NAME_BY_WIDTH = {768: "clip_l", 1024: "clip_h", 1280: "clip_g"}
_DIFFUSERS_SD2_LAYERS = 23


def _compute_dtype(manager: Any, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    if manager is not None and hasattr(manager, "text_encoder_dtype"):
        return manager.text_encoder_dtype()
    return torch.float32


def _canonical(state_dict: StateDict, layout: str, prefix: str) -> dict[str, torch.Tensor]:
    return hf_to_canonical(state_dict, prefix) if layout == "hf" else open_clip_to_canonical(state_dict, prefix)


def _encoder(slot: EncoderSlot, canonical: dict[str, torch.Tensor], overrides: dict, dtype: torch.dtype, manager: Any) -> TextEncoder:
    arch = infer_arch(slot.name, canonical, overrides.get(slot.name))
    if slot.name == "clip_h" and arch.layers == _DIFFUSERS_SD2_LAYERS and slot.default_layer == -2:
        # diffusers ships SD2's ViT-H cut to 23 layers (SD2 never uses the 24th): its last layer
        # is the original penultimate one.
        slot = dataclasses.replace(slot, default_layer=-1)
    model = load_canonical(arch, canonical, dtype)
    if manager is not None and hasattr(manager, "register"):
        manager.register(model, f"text encoder {slot.name}")
    return TextEncoder(slot, arch, model, manager)


def load_clip(
    state_dict: StateDict,
    family: str,
    arch_overrides: Mapping[str, Any] | str | None = None,
    *,
    manager: Any = None,
    dtype: torch.dtype | None = None,
    embeddings: EmbeddingResolver | None = None,
) -> CLIP:
    """The family's text encoders from a checkpoint state dict with its original prefixes.

    `arch_overrides` is the parsed ``"latentgraph.arch"`` metadata (its ``"text"`` part is used; see
    diffusion.text.arch). `manager` is an optional diffusion.memory.ModelManager that places the
    networks and chooses the dtype; without one the encoders run on the CPU in float32.
    """
    overrides = text_overrides(arch_overrides)
    dtype = _compute_dtype(manager, dtype)
    encoders = []
    for slot in family_slots(family):
        canonical = _canonical(state_dict, slot.layout, slot.prefix)
        if not canonical:
            raise TextEncoderError(f"the {family} checkpoint has no {slot.name} text encoder (no keys under {slot.prefix!r})")
        encoders.append(_encoder(slot, canonical, overrides, dtype, manager))
    return CLIP(family, encoders, embeddings=embeddings)


def find_text_encoders(state_dict: StateDict) -> list[tuple[str, str]]:
    """(layout, prefix) of every text transformer in a file; vision towers are skipped."""
    keys = set(state_dict.keys())
    found = []
    for key in sorted(keys):
        if key.endswith(_HF_PROBE):
            prefix = key[: -len(_HF_PROBE)]
            if prefix + "embeddings.token_embedding.weight" in keys:
                # transformers keeps text_projection beside text_model (diffusers text_encoder_2,
                # CLIPModel files), so read from the parent prefix; "text_model." is stripped later.
                found.append(("hf", prefix.removesuffix("text_model.")))
        elif key.endswith(_OPEN_CLIP_PROBE):
            prefix = key[: -len(_OPEN_CLIP_PROBE)]
            if prefix + "token_embedding.weight" in keys:
                found.append(("open_clip", prefix))
    return found


def _identify(canonical: Mapping[str, torch.Tensor], overrides: dict, source: str) -> str:
    layers = 1 + max(int(k.split(".")[2]) for k in canonical if k.startswith("encoder.layers."))
    width = canonical["embeddings.token_embedding.weight"].shape[1]
    name = _NAME_BY_DEPTH.get(layers) or _NAME_BY_WIDTH.get(width)
    if name is None and len(overrides) == 1:
        name = next(iter(overrides))
    if name is None:
        raise TextEncoderError(f"{source}: a {layers}-layer width-{width} text encoder is not CLIP-L, ViT-H or bigG")
    return name


def _separate_family(names: Sequence[str]) -> str:
    present = sorted(names)
    if present == ["clip_l"]:
        return "sd1"
    if present == ["clip_h"]:
        return "sd2"
    if present == ["clip_g"]:
        return "sdxl-refiner"
    if present == ["clip_g", "clip_l"]:
        return "sdxl"
    raise TextEncoderError(
        f"text encoders {present} do not form a Stable Diffusion text stack "
        "(one CLIP-L → SD1, one ViT-H → SD2, one bigG → SDXL refiner, CLIP-L + bigG → SDXL)"
    )


def load_clip_from_state_dicts(
    state_dicts: Sequence[StateDict],
    arch_overrides: Sequence[Mapping[str, Any] | str | None] | None = None,
    *,
    family: str | None = None,
    manager: Any = None,
    dtype: torch.dtype | None = None,
    embeddings: EmbeddingResolver | None = None,
) -> CLIP:
    """A CLIP from separate text-encoder files (CLIPLoader: one file; DualCLIPLoader: two).

    The family follows from which encoders the files hold unless `family` is given, in which case
    it must agree. `arch_overrides` holds each file's ``"latentgraph.arch"`` metadata (or None).
    """
    overrides_list = list(arch_overrides or [None] * len(state_dicts))
    if len(overrides_list) != len(state_dicts):
        raise ValueError("arch_overrides must have one entry per state dict")
    dtype = _compute_dtype(manager, dtype)
    parts: dict[str, tuple[dict[str, torch.Tensor], dict]] = {}
    for index, (state_dict, raw_overrides) in enumerate(zip(state_dicts, overrides_list, strict=True)):
        overrides = text_overrides(raw_overrides)
        found = find_text_encoders(state_dict)
        if not found:
            raise TextEncoderError(f"file {index + 1} holds no CLIP text encoder (HF or OpenCLIP layout)")
        for layout, prefix in found:
            canonical = _canonical(state_dict, layout, prefix)
            name = _identify(canonical, overrides, f"file {index + 1}")
            if name in parts:
                raise TextEncoderError(f"two {name} text encoders given; a text stack holds each encoder once")
            parts[name] = (canonical, overrides)
    detected = _separate_family(list(parts))
    if family is not None and family != detected:
        if family not in FAMILY_SLOTS:
            family_slots(family)  # raises the unknown-family error
        raise TextEncoderError(f"these text encoders make a {detected} text stack, not {family}")
    encoders = []
    for slot in family_slots(detected):
        canonical, overrides = parts[slot.name]
        encoders.append(_encoder(slot, canonical, overrides, dtype, manager))
    return CLIP(detected, encoders, embeddings=embeddings)
