"""A runtime whose --base-directory holds the ComfyUI-style test pack in custom_nodes/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from app.bootstrap import Runtime, create_runtime
from app.settings import Settings

PACK = Path(__file__).resolve().parent / "packs" / "comfy_style_pack"


def install_pack(base: Path) -> None:
    shutil.copytree(PACK, base / "custom_nodes" / PACK.name, ignore=shutil.ignore_patterns("__pycache__"))


def make_runtime(base: Path, **settings) -> Runtime:
    return create_runtime(Settings(base_directory=base, cache_ram_gb=0.5, **settings))


@pytest.fixture
def base(tmp_path: Path) -> Path:
    install_pack(tmp_path)
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "tiny.safetensors").write_bytes(b"not read")
    (tmp_path / "models" / "style_models_of_pack").mkdir()
    save_file({"gain": torch.tensor(0.5)}, str(tmp_path / "models" / "style_models_of_pack" / "half.safetensors"))
    return tmp_path


@pytest.fixture
def runtime(base: Path) -> Runtime:
    return make_runtime(base)
