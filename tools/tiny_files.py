"""Writing tiny model files atomically (a temporary sibling, then a rename)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def save_safetensors(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``state`` to ``path`` (parents created); readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({key: value.contiguous() for key, value in state.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
