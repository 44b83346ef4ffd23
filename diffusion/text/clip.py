"""The CLIP value that flows between nodes: tokenizers plus one or two text encoders of a family.

Tokens are ``{key: [chunk, …]}`` with keys ``"l"`` (CLIP-L), ``"h"`` (OpenCLIP ViT-H) and ``"g"``
(OpenCLIP bigG), each chunk 77 ``(token, weight)`` pairs. SDXL conditioning is CLIP-L ⊕ bigG
features; its pooled output comes from bigG's projection.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from diffusion.text.embeddings import EmbeddingLibrary
from diffusion.text.encoder import TextEncoder
from diffusion.text.tokenizer import Chunk, EmbeddingResolver, SDTokenizer
from diffusion.weight_patches import (
    PatchEntry,
    copy_patch_lists,
    key_patches,
    patch_value_parts,
    record_patches,
)

Tokens = dict[str, list[Chunk]]


class CLIP:
    """Copy-on-write text-encoder handle: clones share the networks and differ only in settings."""

    def __init__(
        self,
        family: str,
        encoders: list[TextEncoder],
        embeddings: EmbeddingResolver | None = None,
    ) -> None:
        if not encoders:
            raise ValueError("a CLIP needs at least one text encoder")
        self.family = family
        self.encoders = {encoder.slot.token_key: encoder for encoder in encoders}
        self.tokenizers = {
            key: SDTokenizer(key, encoder.slot.pad_token) for key, encoder in self.encoders.items()
        }
        self.embeddings = embeddings
        self.layer_idx: int | None = None
        # Weight patches by ComfyUI key ("clip_l.transformer.text_model.…"), as on a MODEL.
        self.patches: dict[str, list[PatchEntry]] = {}
        self.patches_uuid: uuid.UUID | None = None

    # settings -------------------------------------------------------------------------------
    def clone(self) -> CLIP:
        """A new handle sharing the networks and tokenizers; settings and patches stay on the clone."""
        other = copy.copy(self)
        other.encoders = dict(self.encoders)
        other.tokenizers = dict(self.tokenizers)
        other.patches = copy_patch_lists(self.patches)
        return other

    # weight patches -------------------------------------------------------------------------
    def add_patches(
        self, patches: dict[Any, Any], strength_patch: float = 1.0, strength_model: float = 1.0
    ) -> list[Any]:
        """Record weight patches on this handle (call on a clone); returns the keys the encoders have."""
        known = {key for encoder in self.encoders.values() for key in encoder.weights.keys}
        accepted = record_patches(self.patches, known, patches, strength_patch, strength_model)
        self.patches_uuid = uuid.uuid4()
        return accepted

    def get_key_patches(self, filter_prefix: str | None = None) -> dict[str, list[Any]]:
        """``{key: [(original weight,), *entries]}`` for every encoder weight (ComfyUI's merge input)."""
        result: dict[str, list[Any]] = {}
        for encoder in self.encoders.values():
            result.update(key_patches(encoder.weights, self.patches, filter_prefix))
        return result

    def load_sd(self, sd: dict[str, torch.Tensor], full_model: bool = False) -> tuple[list[str], list[str]]:
        """Take these encoder weights (ComfyUI keys) on this handle; returns (missing, unexpected).

        Unlike ComfyUI, which overwrites the shared network, the weights are recorded as ``set``
        patches, so clones that share the encoders keep theirs (call on a clone).
        """
        known = {key for encoder in self.encoders.values() for key in encoder.weights.keys}
        for key, value in sd.items():
            if key in known:
                self.patches.setdefault(key, []).append((1.0, ("set", (value,)), 1.0, None, None))
        self.patches_uuid = uuid.uuid4()
        return sorted(known - set(sd)), sorted(set(sd) - known)

    @property
    def cond_stage_model(self) -> CondStageModel:
        """ComfyUI's ``clip.cond_stage_model``: layer options and the state dict."""
        return CondStageModel(self)

    def get_sd(self) -> dict[str, torch.Tensor]:
        """Every encoder weight under ComfyUI keys, with this handle's patches merged.

        The tensors are never modified afterwards (patching replaces tensors), so a save may hold them.
        """
        result = {}
        for encoder in self.encoders.values():
            encoder.prepare(self.patches, self.patches_uuid)
            result.update({key: encoder.weights.parameter(key).data for key in encoder.weights.keys})
        return result

    def set_last_layer(self, layer: int) -> None:
        """Clip skip: use hidden state `layer` (−1 last, −2 = A1111 "clip skip 2") of every encoder.

        As in ComfyUI, an explicit layer replaces the family default (SD2/SDXL penultimate); whether
        the final LayerNorm follows is the family's rule (SD1, SD2: yes; SDXL: no).
        """
        if not isinstance(layer, int) or layer >= 0:
            raise ValueError(f"clip layer must be a negative integer (-1 = last layer), got {layer!r}")
        self.layer_idx = layer

    clip_layer = set_last_layer  # ComfyUI's spelling, used by custom nodes

    def reset_clip_options(self) -> None:
        """Back to the family's default hidden layer."""
        self.layer_idx = None

    def with_embedding_files(self, find_file: Callable[[str], Path | None]) -> CLIP:
        """A clone that resolves ``embedding:NAME`` through `find_file` (a contained folder lookup)."""
        other = self.clone()
        widths = {key: encoder.width for key, encoder in self.encoders.items()}
        other.embeddings = EmbeddingLibrary(find_file, widths)
        return other

    # tokenise / encode ----------------------------------------------------------------------
    def tokenize(
        self, text: str, return_word_ids: bool = False, embeddings: EmbeddingResolver | None = None, **_: object
    ) -> Tokens:
        """Chunks for every encoder of the family (same text for all); see SDTokenizer."""
        resolver = embeddings if embeddings is not None else self.embeddings
        return {
            key: tokenizer.tokenize_with_weights(text, resolver, return_word_ids=return_word_ids)
            for key, tokenizer in self.tokenizers.items()
        }

    def empty_chunks(self, key: str, count: int) -> list[Chunk]:
        return [self.encoders[key].empty_chunk() for _ in range(count)]

    def encode_from_tokens(self, tokens: Tokens, return_pooled: bool = False, return_dict: bool = False):
        """cond [1, 77·k, C] (C = sum of encoder widths), and the pooled output if asked."""
        missing = [key for key in self.encoders if key not in tokens]
        if missing:
            raise ValueError(f"tokens lack {missing} for this {self.family} text encoder (have {sorted(tokens)})")
        outputs = {
            key: encoder.encode(tokens[key], self.layer_idx, self.patches, self.patches_uuid)
            for key, encoder in self.encoders.items()
        }
        conds = [cond for cond, _ in outputs.values()]
        length = min(c.shape[1] for c in conds)  # SDXL l/g of different lengths: cut to the shorter
        cond = torch.cat([c[:, :length] for c in conds], dim=-1)
        pooled_key = "g" if "g" in outputs else next(iter(outputs))
        pooled = outputs[pooled_key][1]
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(self, tokens: Tokens, unmerged_hooks=None, add_dict: dict | None = None, **_: object):
        """CONDITIONING ``[[cond, {"pooled_output": …, **add_dict}]]`` (newer ComfyUI API custom nodes call).

        Hook scheduling is not supported; passing hooks is an error rather than silently ignored.
        """
        if unmerged_hooks:
            raise NotImplementedError("CLIP hooks are not supported")
        cond, pooled = self.encode_from_tokens(tokens, return_pooled=True)
        return [[cond, {"pooled_output": pooled, **(add_dict or {})}]]

    def encode(self, text: str) -> torch.Tensor:
        return self.encode_from_tokens(self.tokenize(text))

    # accounting -----------------------------------------------------------------------------
    def cache_size_bytes(self) -> int:
        return sum(size for _, size in self.cache_shared_parts())

    def cache_shared_parts(self) -> list[tuple[Any, int]]:
        """What clones share, each counted once by the output cache: the encoders (with patched
        copies of their weights while patched) and every patch value."""
        encoders = [(e, e.size_bytes() + e.weights.patched_bytes()) for e in self.encoders.values()]
        return [*encoders, *patch_value_parts(self.patches)]

    def __repr__(self) -> str:
        parts = ", ".join(f"{e.slot.name} w{e.width}×{e.arch.layers}" for e in self.encoders.values())
        return f"CLIP({self.family}: {parts}, layer={self.layer_idx})"


class CondStageModel:
    """View of a CLIP as ComfyUI's ``cond_stage_model`` (its encoders together) for packs.

    Layer options set here are the CLIP handle's own (``clip_layer`` on a clone, as ComfyUI's
    CLIPSetLastLayer does); ``state_dict`` gives the unpatched weights under ComfyUI keys.
    """

    def __init__(self, clip: CLIP) -> None:
        self._clip = clip

    def clip_layer(self, layer_idx: int) -> None:
        self._clip.set_last_layer(layer_idx)

    def reset_clip_options(self) -> None:
        self._clip.reset_clip_options()

    def set_clip_options(self, options: dict[str, Any]) -> None:
        """ComfyUI's option dict; ``layer`` is honoured, other options are not offered."""
        if "layer" in options:
            self._clip.set_last_layer(options["layer"])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: entries[0][0] for key, entries in self._clip.get_key_patches().items()}

    def load_sd(self, sd: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        return self._clip.load_sd(sd)
