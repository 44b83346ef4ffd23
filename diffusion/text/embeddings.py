"""Textual-inversion embedding files: find them by prompt name and read their vectors.

Formats (shared/reference/model-formats.md §5.1): A1111 ``.pt`` (``string_to_param``), diffusers
concept ``.bin`` (one ``{token: tensor}``), kohya ``emb_params`` and SDXL ``clip_l``/``clip_g``
pairs, several vectors each, in ``.safetensors`` or pickles read with
``torch.load(weights_only=True)`` only (never unpickled otherwise). Files are
located through a `find_file` callable the caller supplies (the node layer passes one that resolves
names inside the embeddings folders with engine.paths.contained_path), so this module never
handles an unchecked user path itself.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

EMBEDDING_EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")
# Which named part of a dual-encoder (SDXL) embedding belongs to which tokenizer key.
_PART_FOR_KEY = {"l": "clip_l", "g": "clip_g", "h": "clip_h"}


class EmbeddingFileError(ValueError):
    """An embedding file exists but cannot be read safely or holds no usable vectors."""


def load_embedding_file(path: Path) -> Mapping[str, object]:
    """The raw contents: safetensors directly, pickles only through the weights_only loader.

    An old pickle the restricted unpickler refuses (e.g. it names a training class) is not
    unpickled: when it is a zip-format file its raw tensor records are read as float32 instead
    (ComfyUI's fallback), and :func:`embedding_vectors` picks the one of the encoder's width.
    A list of ``{name: tensor}`` dicts (another trainer's layout) becomes one dict.
    """
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many types
        records = _raw_float_records(path)
        if records:
            return {RAW_RECORDS: records}
        raise EmbeddingFileError(
            f"{path.name}: cannot be read without unsafe unpickling ({type(exc).__name__}); convert it to .safetensors"
        ) from None
    if isinstance(data, list) and all(isinstance(part, Mapping) for part in data):
        data = {LIST_PARTS: tuple(t for part in data for t in part.values() if isinstance(t, torch.Tensor))}
    if not isinstance(data, dict):
        raise EmbeddingFileError(f"{path.name}: expected a dict of tensors, got {type(data).__name__}")
    return data


RAW_RECORDS = "<raw float32 records>"
LIST_PARTS = "<tensors of a list of dicts>"


def _raw_float_records(path: Path) -> tuple[torch.Tensor, ...]:
    """The tensor storages of a zip-format torch file read as float32, last first (no unpickling)."""
    if not zipfile.is_zipfile(path):
        return ()
    with zipfile.ZipFile(path) as archive:
        names = [name for name in archive.namelist() if "/data/" in name or name.startswith("data/")]
        blobs = [archive.read(name) for name in reversed(names)]
    return tuple(torch.frombuffer(bytearray(b), dtype=torch.float32) for b in blobs if b and len(b) % 4 == 0)


def embedding_vectors(data: Mapping[str, object], key: str, width: int | None = None) -> torch.Tensor:
    """Vectors [n, width] for tokenizer `key` in ComfyUI's lookup order.

    `width` (the encoder's) is needed only for raw records of an old pickle, to tell which
    storage holds the vectors.
    """
    if RAW_RECORDS in data:
        fitting = [t for t in data[RAW_RECORDS] if width and t.numel() >= width and t.numel() % width == 0]
        if not fitting:
            raise EmbeddingFileError(f"no tensor of width {width} in this old embedding file")
        return fitting[0].reshape(-1, width).clone()
    params = data.get("string_to_param")
    if LIST_PARTS in data:  # every part of the encoder's width, in order
        parts = [t.reshape(-1, t.shape[-1]) for t in data[LIST_PARTS]]
        wanted = width or (parts[0].shape[-1] if parts else 0)
        parts = [t for t in parts if t.shape[-1] == wanted]
        if not parts:
            raise EmbeddingFileError(f"no tensor of width {width} in this embedding file")
        tensor = torch.cat(parts)
    elif isinstance(params, Mapping) and params:
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
        self._files: dict[str, Mapping[str, object] | None] = {}

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
        width = self._widths.get(key)
        vectors = embedding_vectors(data, key, width)
        if width is not None and vectors.shape[-1] != width:
            log.warning(
                "embedding %r has width %d but this text encoder (%s) has %d; ignored",
                name, vectors.shape[-1], key, width,
            )
            return None
        return vectors
