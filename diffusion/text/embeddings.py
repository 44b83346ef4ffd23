"""Textual-inversion embedding files: find them by prompt name and read their vectors.

Formats (shared/reference/model-formats.md §5.1): A1111 ``.pt`` (``string_to_param``), diffusers
concept ``.bin`` (one ``{token: tensor}``), kohya ``emb_params`` and SDXL ``clip_l``/``clip_g``
pairs, in ``.safetensors`` or pickles read with ``torch.load(weights_only=True)`` only. Files are
located through a `find_file` callable the caller supplies (the node layer passes one that resolves
names inside the embeddings folders with engine.paths.contained_path), so this module never
handles an unchecked user path itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

EMBEDDING_EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")
# Which named part of a dual-encoder (SDXL) embedding belongs to which tokenizer key.
_PART_FOR_KEY = {"l": "clip_l", "g": "clip_g", "h": "clip_h"}


class EmbeddingFileError(ValueError):
    """An embedding file exists but cannot be read safely or holds no usable vectors."""


def load_embedding_file(path: Path) -> dict[str, object]:
    """The raw contents: safetensors directly, pickles only through the weights_only loader."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many types
        raise EmbeddingFileError(
            f"{path.name}: cannot be read without unsafe unpickling ({type(exc).__name__}); convert it to .safetensors"
        ) from None
    if not isinstance(data, dict):
        raise EmbeddingFileError(f"{path.name}: expected a dict of tensors, got {type(data).__name__}")
    return data


def embedding_vectors(data: Mapping[str, object], key: str) -> torch.Tensor:
    """Vectors [n, width] for tokenizer `key` in ComfyUI's lookup order."""
    params = data.get("string_to_param")
    if isinstance(params, Mapping) and params:
        tensor = next(iter(params.values()))
    elif _PART_FOR_KEY.get(key) in data:
        tensor = data[_PART_FOR_KEY[key]]
    elif "emb_params" in data:
        tensor = data["emb_params"]
    else:
        tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
        if not tensors:
            raise EmbeddingFileError("no tensor found in embedding file")
        tensor = tensors[0]
    if not isinstance(tensor, torch.Tensor) or tensor.ndim not in (1, 2):
        raise EmbeddingFileError("embedding tensor must be [width] or [n, width]")
    return tensor.detach().reshape(-1, tensor.shape[-1]).float()


class EmbeddingLibrary:
    """Resolver ``(name, key) → vectors | None`` used by the tokenizer; reads each file once per library.

    `widths` maps a tokenizer key to its encoder width so a file trained for another model is
    reported and skipped instead of failing deep inside the encoder.
    """

    def __init__(self, find_file: Callable[[str], Path | None], widths: Mapping[str, int]) -> None:
        self._find_file = find_file
        self._widths = dict(widths)
        self._files: dict[str, dict[str, object] | None] = {}

    def locate(self, name: str) -> Path | None:
        candidates = [name] if name.lower().endswith(EMBEDDING_EXTENSIONS) else []
        candidates += [name + ext for ext in EMBEDDING_EXTENSIONS]
        for candidate in candidates:
            path = self._find_file(candidate)
            if path is not None:
                return path
        return None

    def __call__(self, name: str, key: str) -> torch.Tensor | None:
        if name not in self._files:
            path = self.locate(name)
            self._files[name] = load_embedding_file(path) if path is not None else None
        data = self._files[name]
        if data is None:
            return None
        vectors = embedding_vectors(data, key)
        width = self._widths.get(key)
        if width is not None and vectors.shape[-1] != width:
            log.warning(
                "embedding %r has width %d but this text encoder (%s) has %d; ignored",
                name, vectors.shape[-1], key, width,
            )
            return None
        return vectors
