"""Merge/save tests reuse the model-stack fixtures: tiny checkpoints written once, one thread."""

import pytest

from diffusion.memory import ModelManager
from engine.paths import FolderPaths
from engine.runtime import Services, using_services
from tests.models.conftest import _single_thread, cpu_manager, tiny_checkpoint  # noqa: F401


@pytest.fixture()
def services(tmp_path):
    """Engine services over a temporary base folder with a CPU fp32 model manager."""
    paths = FolderPaths(tmp_path / "base")
    paths.ensure_directories()
    value = Services(paths=paths, model_manager=ModelManager("cpu"), settings={})
    with using_services(value):
        yield value
