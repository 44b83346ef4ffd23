"""A block merge saved in ComfyUI's UI format runs through the CLI; its saved checkpoint reproduces it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cli.run import main
from diffusion.checkpoint.files import read_state_dict
from diffusion.checkpoint.tiny import write_tiny_checkpoint

WORKFLOW = Path(__file__).parent / "workflows" / "block_merge.json"
UNET, TEXT = "model.diffusion_model.", "cond_stage_model.transformer."


def _run(workflow: Path, base: Path) -> list[Path]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(workflow), "--base-directory", str(base), "--cpu", "--no-progress"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    return [Path(line) for line in out.getvalue().splitlines() if line.strip()]


def _one(paths: list[Path], suffix: str) -> Path:
    (path,) = [p for p in paths if p.name.endswith(suffix)]
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _block_ratio(key: str) -> float:
    """The workflow's ModelMergeBlocks widgets: input 0.3, middle 0.6, out 0.8 (ComfyUI's prefix rule)."""
    local = key[len(UNET) :]
    return 0.6 if local.startswith("middle") else 0.8 if local.startswith("out") else 0.3


@pytest.mark.slow
def test_block_merge_workflow_runs_and_its_saved_checkpoint_reproduces_the_image(tmp_path):
    base = tmp_path / "base"
    folder = base / "models" / "checkpoints"
    files = [write_tiny_checkpoint(folder / f"tiny-sd1-{name}.safetensors", "sd1", seed=seed)
             for name, seed in (("a", 0), ("b", 1))]

    written = _run(WORKFLOW, base)
    png, checkpoint = _one(written, ".png"), _one(written, ".safetensors")
    latent = _one(written, ".latent")
    assert checkpoint.parent == base / "output" / "checkpoints" and checkpoint.name == "block_merge_00001_.safetensors"
    with Image.open(png) as image:
        assert json.loads(image.text["workflow"]) == json.loads(WORKFLOW.read_text())
        prompt = json.loads(image.text["prompt"])

    # The saved weights are the merge arithmetic on the two files.
    a, b = (read_state_dict(path)[0] for path in files)
    saved, metadata = read_state_dict(checkpoint)
    assert json.loads(metadata["workflow"]) == json.loads(WORKFLOW.read_text())
    for key in a:
        if key.startswith(UNET):
            r = _block_ratio(key)
            expected = r * a[key] + (1 - r) * b[key]
        elif key.startswith(TEXT) and key.endswith(("weight", "bias")):
            expected = 0.5 * a[key] + 0.5 * b[key]
        else:  # the VAE (from checkpoint a) and the position-id buffer
            expected = a[key]
        torch.testing.assert_close(saved[key], expected, rtol=1e-6, atol=1e-7, msg=key)

    # The same sampling on the saved checkpoint gives the same latent and image, bit for bit.
    shutil.copy(checkpoint, folder / "merged.safetensors")
    for gone in ("2", "3", "4", "11"):
        del prompt[gone]
    prompt["1"]["inputs"]["ckpt_name"] = "merged.safetensors"
    prompt["8"]["inputs"]["model"] = ["1", 0]
    prompt["5"]["inputs"]["clip"] = prompt["6"]["inputs"]["clip"] = ["1", 1]
    prompt["10"]["inputs"]["filename_prefix"] = "reloaded"
    prompt["12"]["inputs"]["filename_prefix"] = "latents/reloaded"
    api = tmp_path / "reloaded.json"
    api.write_text(json.dumps(prompt))
    again = _run(api, base)
    first, second = (load_file(str(path))["latent_tensor"] for path in (latent, _one(again, ".latent")))
    assert torch.equal(second, first)
    assert np.array_equal(_pixels(_one(again, ".png")), _pixels(png))
