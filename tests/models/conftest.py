"""Fixtures for the model-stack tests: tiny checkpoints written once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.memory import ModelManager
from engine.paths import FolderPaths
from engine.runtime import Services, using_services


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine the OpenMP
    barriers of a second thread cost up to 50× (measured: 0.2 s → 6–28 s per tiny SDXL call)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_checkpoint("sdxl")`` → path of a tiny checkpoint of that variant (seed 0, written once).

    ``text=False`` leaves the text encoders out (faster; for UNet/VAE-only tests).
    """
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    written: dict[tuple[str, bool], Path] = {}

    def get(variant: str, text: bool = True) -> Path:
        if (variant, text) not in written:
            name = f"tiny-{variant}{'' if text else '-notext'}.safetensors"
            written[variant, text] = write_tiny_checkpoint(root / name, variant, seed=0, include_text=text)
        return written[variant, text]

    return get


@pytest.fixture()
def cpu_manager() -> ModelManager:
    """A CPU fp32 manager, as on the dev machine."""
    return ModelManager("cpu")


@pytest.fixture()
def services(tmp_path):
    """Node-call services over a fresh folder tree (models, input, output) with a CPU manager."""
    paths = FolderPaths(tmp_path)
    paths.ensure_directories()
    value = Services(paths=paths, model_manager=ModelManager("cpu"), settings={})
    with using_services(value):
        yield value
