"""The shipped default txt2img workflow runs through the engine on the demo-named tiny checkpoint:
progress and JPEG previews per step and a PNG with the prompt and workflow embedded (byte-identical
reruns are checked through the CLI in test_cli_default_workflow.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from app.bootstrap import create_runtime
from app.settings import Settings
from tools.make_tiny_checkpoint import make_tiny_checkpoint

pytestmark = pytest.mark.slow
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


class Recorder:
    def __init__(self):
        self.events, self.previews = [], []

    def on_event(self, event, data):
        self.events.append((event, data))

    def on_preview(self, prompt_id, node_id, image_format, image):
        self.previews.append((node_id, image_format, image))


def _load(name):
    return json.loads((WORKFLOWS / name).read_text())


def test_api_and_ui_default_workflows_describe_the_same_graph():
    prompt, ui = _load("default_txt2img.json"), _load("default_txt2img.workflow.json")
    assert {k: v["class_type"] for k, v in prompt.items()} == {str(n["id"]): n["type"] for n in ui["nodes"]}
    ksampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    inputs = prompt["3"]["inputs"]
    assert ksampler["widgets_values"] == [inputs["seed"], "randomize", inputs["steps"], inputs["cfg"],
                                          inputs["sampler_name"], inputs["scheduler"], inputs["denoise"]]
    assert prompt["5"]["inputs"] == {"width": 512, "height": 512, "batch_size": 1}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    base = tmp_path_factory.mktemp("base")
    prompt = _load("default_txt2img.json")
    target = base / "models" / "checkpoints" / prompt["4"]["inputs"]["ckpt_name"]
    target.parent.mkdir(parents=True)
    make_tiny_checkpoint("sd1", target)
    return create_runtime(Settings(base_directory=base, cpu=True, preview_method="latent2rgb"),
                          load_custom_nodes=False)


def _small_prompt(seed=None):
    prompt = _load("default_txt2img.json")
    prompt["5"]["inputs"].update(width=64, height=64)  # keep the tiny run fast; graph unchanged
    prompt["3"]["inputs"]["steps"] = 3
    if seed is not None:
        prompt["3"]["inputs"]["seed"] = seed
    return prompt


def _run(runtime, prompt, prompt_id):
    recorder = Recorder()
    outcome = runtime.executor.execute(prompt, prompt_id, recorder, force=True,
                                       extra_data={"extra_pnginfo": {"workflow": _load("default_txt2img.workflow.json")}})
    assert outcome.status == "success", outcome.error
    (image,) = outcome.outputs["9"]["images"]
    path = runtime.paths.output_directory / image["subfolder"] / image["filename"]
    return recorder, path


def test_default_workflow_writes_a_png_with_prompt_and_workflow(runtime):
    recorder, path = _run(runtime, _small_prompt(), "a")
    with Image.open(path) as png:
        assert png.size == (64, 64)
        assert json.loads(png.text["prompt"])["3"]["class_type"] == "KSampler"
        assert json.loads(png.text["workflow"])["version"] == 0.4
    progress = [d for e, d in recorder.events if e == "progress" and d.get("node") == "3"]
    assert [(d["value"], d["max"]) for d in progress] == [(1, 3), (2, 3), (3, 3)]
    assert recorder.previews and all(node == "3" and fmt == "JPEG" for node, fmt, _ in recorder.previews)
