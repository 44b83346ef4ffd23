"""A ComfyUI UI-format workflow with SamplerCustomAdvanced + DualCFGGuider runs through `main.py run`."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from cli.run import main
from tools.make_tiny_checkpoint import make_tiny_checkpoint

WORKFLOW = Path(__file__).parent / "workflows" / "sampler_custom_advanced_dual_cfg.json"


def _run(workflow: Path, base: Path, *extra: str) -> Path:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(workflow), "--base-directory", str(base), "--cpu", "--no-progress", *extra], stdout=out,
                stderr=err)
    assert code == 0, err.getvalue()
    (png,) = [Path(line) for line in out.getvalue().splitlines() if line.endswith(".png")]
    return png


def test_sampler_custom_advanced_with_dual_cfg_guider_runs_from_the_cli(tmp_path):
    make_tiny_checkpoint("sd1", tmp_path / "models" / "checkpoints" / "tiny-sd1.safetensors")
    png = _run(WORKFLOW, tmp_path)
    with Image.open(png) as image:
        assert image.size == (64, 64)
        prompt = json.loads(image.text["prompt"])
        guider = next(n for n in prompt.values() if n["class_type"] == "DualCFGGuider")
        assert guider["inputs"]["cfg_conds"] == 6.0 and guider["inputs"]["style"] == "regular"
        assert json.loads(image.text["workflow"]) == json.loads(WORKFLOW.read_text())
        first = image.tobytes()
    # The guider's second scale reaches the sampler: another value gives another image.
    with Image.open(_run(WORKFLOW, tmp_path, "--set", "9.cfg_cond2_negative=1.0")) as image:
        assert image.tobytes() != first
