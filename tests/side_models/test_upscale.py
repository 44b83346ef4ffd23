"""Upscale models: spandrel detects a released-layout ESRGAN file; tiles reproduce the whole-image
result; out-of-memory retries smaller tiles; the UI workflow runs through `main.py run`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli.run import main
from diffusion.memory import ModelManager
from diffusion.upscale import UpscaleModelError, load_upscale_model, upscale_image
from tools.make_tiny_upscale_model import write_tiny_esrgan

WORKFLOWS = Path(__file__).parent / "workflows"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return write_tiny_esrgan(tmp_path_factory.mktemp("upscale") / "tiny-esrgan-x4.pth")


@pytest.fixture
def model(model_file):
    return load_upscale_model(model_file, ModelManager("cpu"))


def test_a_released_layout_file_is_detected_as_esrgan_x4_in_both_containers(model_file, tmp_path):
    manager = ModelManager("cpu")
    from_pth = load_upscale_model(model_file, manager)
    from_safetensors = load_upscale_model(write_tiny_esrgan(tmp_path / "x2.safetensors", scale=2), manager)
    assert (from_pth.architecture, from_pth.scale) == ("ESRGAN", 4)
    assert (from_safetensors.architecture, from_safetensors.scale) == ("ESRGAN", 2)


def test_loading_spandrel_leaves_no_torchvision_stand_in_behind():
    code = ("import sys; from diffusion.upscale import _import_spandrel; had = 'torchvision' in sys.modules; "
            "_import_spandrel(); print(had, 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    had, has = out.stdout.split()
    assert has == had  # a fresh process without torchvision has none afterwards either


def test_tiled_result_equals_the_whole_image_away_from_seams(model):
    image = torch.rand(2, 40, 56, 3, generator=torch.Generator().manual_seed(1))
    whole = upscale_image(model, image, tile=512)
    assert whole.shape == (2, 160, 224, 3)
    assert whole.std() > 0.01  # a real picture, not a clamped constant
    tiled = upscale_image(model, image, tile=24, overlap=8)
    # tile starts at 0, 16, 32 (rows: 0, 16): seams lie in the overlaps [16, 24) and [32, 40)
    away = torch.ones(160, 224, dtype=torch.bool)
    for start in (16, 32):
        away[:, 4 * start - 8 : 4 * (start + 8) + 8] = False
    away[4 * 16 - 8 : 4 * 24 + 8, :] = False
    assert (whole - tiled)[:, away].abs().max() <= 1 / 255
    assert (whole - tiled).abs().max() <= 4 / 255  # cross-fades keep even the seams close


def test_progress_counts_every_tile_of_every_image(model):
    calls = []
    upscale_image(model, torch.rand(2, 40, 56, 3), tile=24, overlap=8, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 12) for i in range(1, 13)]


def test_out_of_memory_on_a_large_tile_retries_with_smaller_tiles(model):
    network = model.descriptor.model
    real_forward = network.forward
    sides = []

    def forward(x):
        sides.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(x)

    network.forward = forward
    calls = []
    image = torch.rand(1, 64, 64, 3)
    result = upscale_image(model, image, tile=128, overlap=8, min_tile=16, progress=lambda d, t: calls.append(t))
    del network.forward
    assert sides[:2] == [64, 64] and set(sides[2:]) == {32}  # tiles of 128 and 64 failed; 32 ran
    assert calls and set(calls) == {9}  # progress restarted with the 32-pixel tile count (3×3)
    reference = upscale_image(model, image, tile=32, overlap=8)
    assert torch.equal(result, reference)


def test_out_of_memory_below_the_smallest_tile_is_raised(model):
    def forward(x):
        raise torch.OutOfMemoryError("CUDA out of memory")

    model.descriptor.model.forward = forward
    with pytest.raises(torch.OutOfMemoryError):
        upscale_image(model, torch.rand(1, 64, 64, 3), tile=64, min_tile=32)


def test_a_file_that_is_not_an_upscale_model_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"first_stage_model.weight": torch.zeros(2)}, str(tmp_path / "vae.safetensors"))
    with pytest.raises(UpscaleModelError, match="not an upscale model"):
        load_upscale_model(tmp_path / "vae.safetensors", ModelManager("cpu"))


def test_esrgan_ui_workflow_runs_through_the_cli(tmp_path):
    base = tmp_path / "base"
    write_tiny_esrgan(base / "models" / "upscale_models" / "tiny-esrgan-x4.pth")
    (base / "input").mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(base / "input" / "photo.png")
    out, err = io.StringIO(), io.StringIO()
    code = main([str(WORKFLOWS / "esrgan_upscale.json"), "--base-directory", str(base), "--no-progress", "--cpu"],
                stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    written = [Path(line) for line in out.getvalue().splitlines() if line.strip()]
    assert len(written) == 1
    with Image.open(written[0]) as image:
        assert image.size == (128, 96)
        assert json.loads(image.text["prompt"])["3"]["class_type"] == "ImageUpscaleWithModel"


def test_the_node_reports_progress_per_tile_to_the_running_prompt(model, tmp_path):
    from engine.paths import FolderPaths
    from engine.runtime import NodeContext, Services, node_context
    from nodes.upscale import ImageUpscaleWithModel

    reports = []
    services = Services(paths=FolderPaths(tmp_path), model_manager=model.manager)
    context = NodeContext("prompt", "3", services, None, lambda value, total, preview: reports.append((value, total)))
    with node_context(context):
        (image,) = ImageUpscaleWithModel().upscale(model, torch.rand(1, 600, 40, 3))
    assert image.shape == (1, 2400, 160, 3)
    assert reports == [(1, 2), (2, 2)]  # 512-px tiles with 32 px overlap: two down the tall image
