"""UI-format unCLIP and SDXL revision workflows (tests/side_models/workflows) run through
`main.py run` on tiny files; a different input image gives a different picture (the image
conditioning reaches the UNet)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.run import main
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from tools.make_tiny_clip_vision import write_tiny_clip_vision
from tools.make_tiny_unclip_checkpoint import write_tiny_unclip_checkpoint

pytestmark = pytest.mark.slow
WORKFLOWS = Path(__file__).parent / "workflows"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("base")
    write_tiny_unclip_checkpoint(base / "models" / "checkpoints" / "tiny-sd21-unclip.safetensors")
    write_tiny_checkpoint(base / "models" / "checkpoints" / "tiny-sdxl.safetensors", "sdxl")
    write_tiny_clip_vision(base / "models" / "clip_vision" / "tiny-clip-vision-g.safetensors", projection_dim=64)
    return base


def run(base: Path, workflow: str, seed: int) -> np.ndarray:
    (base / "input").mkdir(exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(base / "input" / "photo.png")
    out, err = io.StringIO(), io.StringIO()
    code = main([str(WORKFLOWS / workflow), "--base-directory", str(base), "--no-progress", "--cpu"],
                stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    written = [Path(line) for line in out.getvalue().splitlines() if line.strip()]
    assert len(written) == 1
    with Image.open(written[0]) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("workflow", ["unclip.json", "sdxl_revision.json"])
def test_image_prompt_workflow_runs_and_follows_the_image(base, workflow):
    first, second = run(base, workflow, seed=0), run(base, workflow, seed=1)
    assert first.shape == (64, 64, 3)
    assert np.abs(first - second).max() > 0
