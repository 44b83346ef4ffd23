"""Old workflows load anyway: files lacking since-added inputs get defaults (with warnings), POST
/prompt stays strict, and a PNG whose API prompt fails validation is read from its UI workflow."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.validation import validate_prompt
from engine.workflow import load_png_workflow, load_workflow_data
from server.context import ServerConfig
from tests.server.harness import ServerThread
from tests.support.engine_fixtures import make_runtime

STALE_API = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},  # no batch_size, color
             "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0]}},  # no radius, no sigma
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "old"}}}


@pytest.fixture
def runtime(tmp_path):
    return make_runtime(tmp_path)


def test_api_prompt_gets_defaults_and_one_warning_per_input(runtime):
    loaded = load_workflow_data(json.loads(json.dumps(STALE_API)), runtime.registry)
    assert loaded.prompt["1"]["inputs"] == {"width": 8, "height": 8, "batch_size": 1, "color": 0}
    assert loaded.prompt["2"]["inputs"] == {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}
    assert len(loaded.warnings) == 4
    assert "node 2 (ImageBlur): input 'blur_radius' is missing" in loaded.warnings[2]
    assert validate_prompt(loaded.prompt, runtime.registry).ok
    assert not validate_prompt(STALE_API, runtime.registry).ok  # the raw file is what POST /prompt sees


def test_complete_files_load_without_warnings(runtime):
    complete = load_workflow_data(json.loads(json.dumps(STALE_API)), runtime.registry).prompt
    assert load_workflow_data(complete, runtime.registry).warnings == []


def test_ui_workflow_with_short_widget_values_gets_defaults_but_linked_inputs_do_not(runtime):
    workflow = {"nodes": [
        {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [{"name": "width", "type": "INT", "link": 1,
                                                                "widget": {"name": "width"}}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}], "widgets_values": [8, 4]},
        {"id": 2, "type": "PrimitiveNode", "mode": 0, "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
         "widgets_values": [16]},
        {"id": 3, "type": "ImageSharpen", "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 2}],
         "outputs": [], "widgets_values": [2]}],
        "links": [[1, 2, 0, 1, 0, "INT"], [2, 1, 0, 3, 0, "IMAGE"]]}
    loaded = load_workflow_data(workflow, runtime.registry)
    assert loaded.prompt["1"]["inputs"] == {"width": 16, "height": 4, "batch_size": 1, "color": 0}
    assert loaded.prompt["3"]["inputs"] == {"image": ["1", 0], "sharpen_radius": 2, "sigma": 1.0, "alpha": 1.0}
    assert [w.split(":")[0] for w in loaded.warnings] == ["node 1 (EmptyImage)"] * 2 + ["node 3 (ImageSharpen)"] * 2


def _png(texts: dict[str, object]) -> bytes:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, json.dumps(value))
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


UI = {"nodes": [
    {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE",
                                                                          "links": [1]}],
     "widgets_values": [8, 4, 1, 255]},
    {"id": 2, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
     "outputs": [], "widgets_values": ["from_ui"]}],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]]}


def test_png_reads_the_ui_workflow_when_its_api_prompt_fails_validation(runtime):
    broken = {"1": {"class_type": "EmptyImage", "inputs": {"width": "wide", "height": 4, "batch_size": 1,
                                                             "color": 0}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    loaded = load_png_workflow(_png({"prompt": broken, "workflow": UI}), runtime.registry)
    assert loaded.source_format == "png:comfyui-ui"
    assert loaded.prompt["1"]["inputs"]["width"] == 8
    assert "failed validation" in loaded.warnings[0] and "UI workflow" in loaded.warnings[0]


def test_png_keeps_a_valid_api_prompt_and_one_whose_ui_workflow_is_no_better(runtime):
    good = {"1": {"class_type": "EmptyImage", "inputs": {"width": 3, "height": 4, "batch_size": 1, "color": 0}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    loaded = load_png_workflow(_png({"prompt": good, "workflow": UI}), runtime.registry)
    assert loaded.source_format == "png:api" and loaded.prompt["1"]["inputs"]["width"] == 3
    bad_ui = json.loads(json.dumps(UI))
    bad_ui["nodes"][0]["widgets_values"][0] = "wide"
    broken = json.loads(json.dumps(good))
    broken["1"]["inputs"]["width"] = "wide"
    loaded = load_png_workflow(_png({"prompt": broken, "workflow": bad_ui}), runtime.registry)
    assert loaded.source_format == "png:api"  # validation then reports the stored prompt's errors


def test_post_prompt_stays_strict(runtime, tmp_path):
    with ServerThread(runtime, ServerConfig(port=0, web_root=tmp_path / "none")) as server:
        response = server.post("/prompt", {"prompt": STALE_API})
    assert response.status == 400
    errors = response.json()["node_errors"]
    assert {e["type"] for e in errors["1"]["errors"]} == {"required_input_missing"}
