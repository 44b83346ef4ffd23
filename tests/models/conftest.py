"""Fixtures for the model-stack tests: tiny checkpoints written once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.memory import ModelManager


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_checkpoint("sdxl")`` → path of a tiny checkpoint of that variant (seed 0, written once)."""
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    written: dict[str, Path] = {}

    def get(variant: str) -> Path:
        if variant not in written:
            written[variant] = write_tiny_checkpoint(root / f"tiny-{variant}.safetensors", variant, seed=0)
        return written[variant]

    return get


@pytest.fixture()
def cpu_manager() -> ModelManager:
    """A CPU fp32 manager, as on the dev machine."""
    return ModelManager("cpu")
