"""Reading tensors from model files without unpickling code and without needless copies.

``.safetensors`` files are memory-mapped copy-on-write: every tensor is a view into the mapping,
so nothing is read until used and weights of the right dtype are never copied. ``.ckpt``/``.pt``/
``.pth``/``.bin`` files go only through ``torch.load(weights_only=True)``, which refuses pickles
that would run arbitrary code; we turn that refusal into a clear :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import mmap
import pickle
import struct
from pathlib import Path
from typing import Any

import torch

from diffusion.checkpoint.errors import CheckpointError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pt2")

_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}

# LDM training leftovers that are not part of the inference model.
_IGNORED_PREFIXES = ("model_ema.", "cond_stage_model_ema.", "loss.", "model.diffusion_model_ema.")
_IGNORED_KEYS = frozenset(
    {
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "logvar",
    }
)


# What torch's CPU allocator guarantees; safetensors writers pad only to 8 bytes.
TENSOR_ALIGNMENT = 64


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return ``(state_dict, metadata)`` of a model file; metadata is safetensors' ``__metadata__``.

    EMA copies and noise-schedule buffers are dropped and a ``state_dict`` wrapper is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path.name}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        tensors, metadata = _read_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        tensors, metadata = _read_pickle(path), {}
    else:
        raise CheckpointError(
            f"unsupported model file type {suffix!r} ({path.name}); use .safetensors or .ckpt"
        )
    return _drop_training_state(tensors), metadata


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with path.open("rb") as handle:
        size = path.stat().st_size
        if size < 8:
            raise CheckpointError(f"{path.name} is not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if header_len > min(size - 8, 100_000_000):
            raise CheckpointError(f"{path.name} is not a safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path.name}: unreadable safetensors header ({exc})") from exc
        # ACCESS_COPY: a private copy-on-write mapping, so in-place weight patches never touch the file.
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if size > 8 + header_len else None
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + header_len
    tensors: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        try:
            dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
            shape = list(entry["shape"])
            begin, end = (int(offset) for offset in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path.name}: bad safetensors entry for {name!r}") from exc
        numel = 1
        for dim in shape:
            numel *= dim
        itemsize = torch.empty((), dtype=dtype).element_size()
        if end - begin != numel * itemsize or data_start + end > size:
            raise CheckpointError(f"{path.name}: tensor {name!r} does not fit its declared shape")
        if numel == 0 or mapped is None:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        flat = torch.frombuffer(mapped, dtype=dtype, count=numel, offset=data_start + begin)
        if (data_start + begin) % TENSOR_ALIGNMENT:
            # CPU kernels round differently on unaligned data: copy, so a model computes the same
            # numbers whatever offset its weights had in whichever file (a reloaded save included).
            flat = flat.clone()
        tensors[name] = flat.view(shape)
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            loaded = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path.name} needs arbitrary code to unpickle and was refused for safety; "
            "convert it to .safetensors with a trusted tool"
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"cannot read {path.name}: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path.name} holds a {type(loaded).__name__}, not a state dict")
    return loaded


def _drop_training_state(loaded: dict[str, Any]) -> dict[str, torch.Tensor]:
    # LDM checkpoints wrap weights in "state_dict"; BasicSR (ESRGAN...) in "params_ema"/"params".
    for wrapper in ("state_dict", "params_ema", "params"):
        inner = loaded.get(wrapper)
        if isinstance(inner, dict):
            loaded = inner
            break
    return {
        key: value
        for key, value in loaded.items()
        if isinstance(value, torch.Tensor)
        and key not in _IGNORED_KEYS
        and not key.startswith(_IGNORED_PREFIXES)
    }


def parse_arch_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """The ``latentgraph.arch`` JSON object of a safetensors header, or ``{}``."""
    raw = metadata.get("latentgraph.arch")
    if not raw:
        return {}
    try:
        arch = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"latentgraph.arch metadata is not valid JSON: {exc}") from exc
    if not isinstance(arch, dict):
        raise CheckpointError("latentgraph.arch metadata must be a JSON object")
    return arch
