"""LoRA workflows saved in ComfyUI's UI format run end to end through the CLI (`main.py run`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from cli.run import main

WORKFLOWS = Path(__file__).parent / "workflows"


def _run(workflow: Path, base: Path) -> list[Path]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(workflow), "--base-directory", str(base), "--cpu", "--no-progress"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return [Path(line) for line in out.getvalue().splitlines() if line.endswith(".png")]


@pytest.mark.parametrize("name", ["one_lora", "two_loras", "sdxl_base_refiner_lora", "lcm_lora"])
def test_lora_workflow_runs_from_the_cli(name, lora_base):
    workflow = WORKFLOWS / f"{name}.json"
    (png,) = _run(workflow, lora_base)
    with Image.open(png) as image:
        assert image.size == (64, 64)
        prompt = json.loads(image.text["prompt"])
        assert any(n["class_type"] == "LoraLoader" for n in prompt.values())
        assert json.loads(image.text["workflow"]) == json.loads(workflow.read_text())
