"""`python main.py run workflows/default_txt2img.workflow.json` end to end, as a user runs it:
a PNG with the prompt and the workflow embedded, identical bytes from two separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tools.make_tiny_checkpoint import make_tiny_checkpoint

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "default_txt2img.workflow.json"


def _start_cli(base: Path, output: Path) -> subprocess.Popen:
    command = [sys.executable, "main.py", "run", str(WORKFLOW), "--base-directory", str(base), "--cpu",
               "--output-directory", str(output), "--no-progress",
               "--set", "5.width=64", "--set", "5.height=64", "--set", "3.steps=2"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


def _pngs(process: subprocess.Popen) -> list[Path]:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return [Path(line) for line in stdout.splitlines() if line.endswith(".png")]


def test_default_workflow_from_the_cli_is_reproducible_and_embeds_prompt_and_workflow(tmp_path):
    ckpt = json.loads((REPO / "workflows" / "default_txt2img.json").read_text())["4"]["inputs"]["ckpt_name"]
    make_tiny_checkpoint("sd1", tmp_path / "models" / "checkpoints" / ckpt)
    # Two independent processes (run side by side to save wall time, each with its own output folder).
    runs = [_start_cli(tmp_path, tmp_path / name) for name in ("out-a", "out-b")]
    (first,), (second,) = (_pngs(run) for run in runs)
    assert first != second and first.read_bytes() == second.read_bytes()
    with Image.open(first) as png:
        assert png.size == (64, 64)
        prompt = json.loads(png.text["prompt"])
        assert prompt["3"]["class_type"] == "KSampler" and prompt["3"]["inputs"]["steps"] == 2
        assert json.loads(png.text["workflow"])["nodes"]
