"""Fixtures for the ControlNet tests: the model-stack fixtures plus tiny ControlNet files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from diffusion.controlnet.tiny import write_tiny_controlnet
from tests.models.conftest import _single_thread, cpu_manager, tiny_checkpoint  # noqa: F401


@pytest.fixture(scope="session")
def tiny_controlnet(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_controlnet("sd1", "diffusers")`` → path of that tiny ControlNet (seed 7, written once)."""
    root = tmp_path_factory.mktemp("tiny_controlnets")
    written: dict[tuple[str, str], Path] = {}

    def get(variant: str, layout: str = "ldm") -> Path:
        if (variant, layout) not in written:
            written[variant, layout] = write_tiny_controlnet(root / f"cn-{variant}-{layout}.safetensors",
                                                             variant, layout, seed=7)
        return written[variant, layout]

    return get
