"""CheckpointLoader → CLIPTextEncode → EmptyLatentImage → KSampler → VAEDecode → SaveImage from the CLI,
for every tiny family in one process (one API prompt holding one sub-graph per family)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from diffusion.checkpoint.tiny import write_tiny_checkpoint

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
FAMILIES = ["sd1", "sd1-inpaint", "sd2-v", "sdxl", "sdxl-refiner"]


def _graph(index: int, variant: str) -> dict:
    n = lambda k: f"{index}{k}"
    return {
        n(1): {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": f"tiny-{variant}.safetensors"},
        },
        n(2): {"class_type": "CLIPTextEncode", "inputs": {"text": "a (red:1.2) cube", "clip": [n(1), 1]}},
        n(3): {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": [n(1), 1]}},
        n(4): {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        n(5): {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": 1,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": [n(1), 0],
                "positive": [n(2), 0],
                "negative": [n(3), 0],
                "latent_image": [n(4), 0],
            },
        },
        n(6): {"class_type": "VAEDecode", "inputs": {"samples": [n(5), 0], "vae": [n(1), 2]}},
        n(7): {
            "class_type": "SaveImage",
            "inputs": {"images": [n(6), 0], "filename_prefix": f"family-{variant}"},
        },
    }


def test_every_tiny_family_runs_the_basic_workflow_from_the_cli(tmp_path):
    prompt: dict = {}
    for index, variant in enumerate(FAMILIES, start=1):
        write_tiny_checkpoint(tmp_path / "models" / "checkpoints" / f"tiny-{variant}.safetensors", variant)
        prompt.update(_graph(index, variant))
    workflow = tmp_path / "families.json"
    workflow.write_text(json.dumps(prompt))
    command = [
        sys.executable,
        "main.py",
        "run",
        str(workflow),
        "--base-directory",
        str(tmp_path),
        "--cpu",
        "--no-progress",
    ]
    done = subprocess.run(
        command,
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=400,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = [Path(line) for line in done.stdout.splitlines() if line.endswith(".png")]
    assert sorted(p.name.split("_")[0] for p in written) == sorted(f"family-{v}" for v in FAMILIES)
    for path in written:
        with Image.open(path) as image:
            assert image.size == (64, 48)
