"""Text-encoder architecture facts: which encoders a family has, where they live, how they are used.

Widths, depths, vocabulary and projection sizes are read from tensor shapes, so tiny and full-size
files take the same path. Head counts and the activation are not recoverable from shapes: they
default to the real models' values (heads = width / 64, quick_gelu for CLIP-L, exact GELU for the
OpenCLIP towers) and may be overridden by the text part of the safetensors metadata entry
``"latentgraph.arch"``::

    {"text": {"clip_l": {"heads": 4}, "clip_g": {"heads": 4, "hidden_act": "gelu"}}}

Keys of ``"text"`` are encoder names (``clip_l`` = OpenAI CLIP ViT-L/14, ``clip_h`` = OpenCLIP
ViT-H/14, ``clip_g`` = OpenCLIP ViT-bigG/14). Per encoder: ``heads`` (int, must divide the width)
and optionally ``hidden_act`` (``"quick_gelu"`` or ``"gelu"``). Unknown keys are rejected so a typo
cannot silently produce a wrong model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Layout = Literal["hf", "open_clip"]

ENCODER_NAMES = ("clip_l", "clip_h", "clip_g")
DEFAULT_ACT = {"clip_l": "quick_gelu", "clip_h": "gelu", "clip_g": "gelu"}
ALLOWED_ACTS = ("quick_gelu", "gelu")
BOS_TOKEN = 49406
EOS_TOKEN = 49407
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77


class TextEncoderError(ValueError):
    """A text-encoder state dict or its architecture description cannot be used."""


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder inside a family: checkpoint prefix and how SD uses its output.

    `token_key` is the key the tokens travel under (ComfyUI's "l", "h", "g").
    `default_layer` is the hidden-state index used when no clip skip is set (-1 last, -2 penultimate);
    `layer_norm_hidden` says whether the final LayerNorm is applied to that hidden state.
    """

    name: str
    token_key: str
    prefix: str
    layout: Layout
    pad_token: int
    default_layer: int
    layer_norm_hidden: bool


# Ordered: the conditioning of a multi-encoder family is the features of these, concatenated.
FAMILY_SLOTS: dict[str, tuple[EncoderSlot, ...]] = {
    "sd1": (EncoderSlot("clip_l", "l", "cond_stage_model.transformer.", "hf", EOS_TOKEN, -1, True),),
    "sd2": (EncoderSlot("clip_h", "h", "cond_stage_model.model.", "open_clip", 0, -2, True),),
    "sdxl": (
        EncoderSlot("clip_l", "l", "conditioner.embedders.0.transformer.", "hf", EOS_TOKEN, -2, False),
        EncoderSlot("clip_g", "g", "conditioner.embedders.1.model.", "open_clip", 0, -2, False),
    ),
    "sdxl-refiner": (EncoderSlot("clip_g", "g", "conditioner.embedders.0.model.", "open_clip", 0, -2, False),),
}
FAMILIES = tuple(FAMILY_SLOTS)


def family_slots(family: str) -> tuple[EncoderSlot, ...]:
    try:
        return FAMILY_SLOTS[family]
    except KeyError:
        raise TextEncoderError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}") from None


@dataclass(frozen=True)
class EncoderArch:
    """Hyper-parameters of one CLIP text transformer, enough to build a transformers model."""

    name: str
    width: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int = VOCAB_SIZE
    positions: int = CONTEXT_LENGTH
    projection_dim: int | None = None
    hidden_act: str = "quick_gelu"

    def __post_init__(self) -> None:
        if self.heads <= 0 or self.width % self.heads:
            raise TextEncoderError(
                f"{self.name}: {self.heads} attention heads do not divide width {self.width}; "
                'set {"text": {"' + self.name + '": {"heads": N}}} in the "latentgraph.arch" metadata'
            )
        if self.hidden_act not in ALLOWED_ACTS:
            raise TextEncoderError(f"{self.name}: hidden_act must be one of {ALLOWED_ACTS}, got {self.hidden_act!r}")


FULL_SIZE: dict[str, EncoderArch] = {
    "clip_l": EncoderArch("clip_l", 768, 12, 12, 3072, hidden_act="quick_gelu"),
    "clip_h": EncoderArch("clip_h", 1024, 24, 16, 4096, projection_dim=1024, hidden_act="gelu"),
    "clip_g": EncoderArch("clip_g", 1280, 32, 20, 5120, projection_dim=1280, hidden_act="gelu"),
}


def text_overrides(arch_overrides: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Validate and return the per-encoder overrides.

    Accepts the whole parsed ``"latentgraph.arch"`` object (reads its ``"text"`` part) or
    ``None``; a JSON string is parsed first.
    """
    if arch_overrides is None:
        return {}
    if isinstance(arch_overrides, (str, bytes)):
        import json

        try:
            arch_overrides = json.loads(arch_overrides)
        except ValueError as exc:
            raise TextEncoderError(f'"latentgraph.arch" metadata is not valid JSON: {exc}') from None
    if not isinstance(arch_overrides, Mapping):
        raise TextEncoderError('"latentgraph.arch" must be a JSON object')
    text = arch_overrides.get("text", {})
    if not isinstance(text, Mapping):
        raise TextEncoderError('"latentgraph.arch" "text" must be an object of encoder names')
    result: dict[str, dict[str, Any]] = {}
    for name, values in text.items():
        if name not in ENCODER_NAMES:
            raise TextEncoderError(f'"latentgraph.arch" text: unknown encoder {name!r}; expected {ENCODER_NAMES}')
        if not isinstance(values, Mapping):
            raise TextEncoderError(f'"latentgraph.arch" text.{name} must be an object')
        unknown = set(values) - {"heads", "hidden_act"}
        if unknown:
            raise TextEncoderError(f'"latentgraph.arch" text.{name}: unknown keys {sorted(unknown)}')
        heads = values.get("heads")
        if heads is not None and (not isinstance(heads, int) or isinstance(heads, bool) or heads <= 0):
            raise TextEncoderError(f'"latentgraph.arch" text.{name}.heads must be a positive integer')
        act = values.get("hidden_act")
        if act is not None and act not in ALLOWED_ACTS:
            raise TextEncoderError(f'"latentgraph.arch" text.{name}.hidden_act must be one of {ALLOWED_ACTS}')
        result[name] = dict(values)
    return result
