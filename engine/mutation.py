"""Debug aid (--debug-mutation-check): detect a node that mutates a value it received.

Inputs may be cache entries shared with other nodes and later prompts, so mutating them in
place silently corrupts results. The check snapshots tensors (clone + version counter) and the
shape of dicts/lists before the call and compares afterwards. It is slow; use it to debug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MAX_CLONE_BYTES = 512 * 1024 * 1024


@dataclass
class _Record:
    path: str
    value: Any
    version: int | None
    copy: Any


def _version(tensor: Any) -> int | None:
    try:
        return int(tensor._version)
    except (RuntimeError, AttributeError):  # inference tensors have no version counter
        return None


def snapshot(inputs: dict[str, list[Any]]) -> list[_Record]:
    import torch

    records: list[_Record] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [(name, value, 0) for name, value in inputs.items()]
    while stack:
        path, value, depth = stack.pop()
        if id(value) in seen or depth > 6:
            continue
        if isinstance(value, torch.Tensor):
            seen.add(id(value))
            nbytes = value.element_size() * value.nelement()
            copy = value.detach().clone() if nbytes <= _MAX_CLONE_BYTES and not value.is_meta else None
            records.append(_Record(path, value, _version(value), copy))
        elif isinstance(value, dict):
            seen.add(id(value))
            records.append(_Record(path, value, None, [(k, id(v)) for k, v in value.items()]))
            stack.extend((f"{path}[{k!r}]", v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            seen.add(id(value))
            records.append(_Record(path, value, None, [id(v) for v in value]))
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in enumerate(value))
        elif isinstance(value, tuple):
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in enumerate(value))
    return records


def find_mutation(records: list[_Record]) -> str | None:
    """The path of the first mutated value, or None."""
    import torch

    for record in records:
        value = record.value
        if isinstance(value, torch.Tensor):
            if record.version is not None and _version(value) != record.version:
                return record.path
            if record.copy is not None and not _same(value.detach(), record.copy):
                return record.path
        elif isinstance(value, dict):
            if [(k, id(v)) for k, v in value.items()] != record.copy:
                return record.path
        elif isinstance(value, list):
            if [id(v) for v in value] != record.copy:
                return record.path
    return None


def _same(a: Any, b: Any) -> bool:
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(torch.equal(a, b))
