"""LoRA workflows saved in ComfyUI's UI format run end to end through the CLI (`main.py run`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from cli.run import main
from diffusion.lora.tiny import write_random_lora
from tools.make_tiny_checkpoint import make_tiny_checkpoint

WORKFLOWS = Path(__file__).parent / "workflows"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_cli")
    for variant in ("sd1", "sdxl", "sdxl-refiner"):
        make_tiny_checkpoint(variant, root / "models" / "checkpoints" / f"tiny-{variant}.safetensors")
    loras = root / "models" / "loras"
    write_random_lora(loras / "tiny-sd1-kohya.safetensors", "kohya", "sd1", seed=1)
    write_random_lora(loras / "tiny-sd1-loha.safetensors", "loha", "sd1", seed=2)
    write_random_lora(loras / "tiny-sdxl-kohya.safetensors", "kohya", "sdxl", seed=3)
    return root


def _run(workflow: Path, base: Path) -> list[Path]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(workflow), "--base-directory", str(base), "--cpu", "--no-progress"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return [Path(line) for line in out.getvalue().splitlines() if line.endswith(".png")]


@pytest.mark.parametrize("name", ["one_lora", "two_loras", "sdxl_base_refiner_lora"])
def test_lora_workflow_runs_from_the_cli(name, base):
    workflow = WORKFLOWS / f"{name}.json"
    (png,) = _run(workflow, base)
    with Image.open(png) as image:
        assert image.size == (64, 64)
        prompt = json.loads(image.text["prompt"])
        assert any(n["class_type"] == "LoraLoader" for n in prompt.values())
        assert json.loads(image.text["workflow"]) == json.loads(workflow.read_text())
