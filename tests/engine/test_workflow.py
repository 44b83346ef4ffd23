"""Workflow loaders: API, ComfyUI UI format (0.4 and 1), our format, PNG metadata."""

import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.errors import WorkflowFormatError
from engine.validation import validate_prompt
from engine.workflow import (api_to_latentgraph, apply_overrides, latentgraph_to_api, load_workflow_data,
                             load_workflow_file, read_png_text)
from tests.support.engine_fixtures import node


def ui_node(node_id, node_type, widgets=None, inputs=(), outputs=(), mode=0, title=None):
    entry = {"id": node_id, "type": node_type, "pos": [0, 0], "size": [100, 50], "flags": {}, "order": 0,
             "mode": mode, "inputs": list(inputs), "outputs": list(outputs), "properties": {}}
    if widgets is not None:
        entry["widgets_values"] = widgets
    if title:
        entry["title"] = title
    return entry


def slot(name, link, type_="*", widget=False):
    entry = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def test_api_prompt_passes_through(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0])}
    loaded = load_workflow_data(prompt, runtime.registry)
    assert loaded.source_format == "api" and loaded.prompt == prompt


def test_ui_workflow_schema_04_with_widgets_control_slots_and_links(runtime):
    workflow = {
        "last_node_id": 4, "last_link_id": 3, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            ui_node(1, "Seed", widgets=[1234, "randomize"], outputs=[{"name": "seed", "type": "INT", "links": [1]}]),
            ui_node(2, "TestAdd", widgets=[5, 6], inputs=[slot("a", 1, "INT", widget=True)],
                    outputs=[{"name": "sum", "type": "INT", "links": [2]}], title="Adder"),
            ui_node(3, "TestOutput", inputs=[slot("value", 2)]),
            ui_node(4, "Note", widgets=["just a note"]),
        ],
        "links": [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "INT"]],
    }
    loaded = load_workflow_data(workflow, runtime.registry)
    assert loaded.source_format == "comfyui-ui" and loaded.workflow is workflow
    assert loaded.prompt == {
        "1": {"inputs": {"seed": 1234}, "class_type": "Seed", "_meta": {"title": "Seed"}},
        "2": {"inputs": {"a": ["1", 0], "b": 6}, "class_type": "TestAdd", "_meta": {"title": "Adder"}},
        "3": {"inputs": {"value": ["2", 0]}, "class_type": "TestOutput", "_meta": {"title": "TestOutput"}},
    }
    assert validate_prompt(loaded.prompt, runtime.registry).ok


def test_ui_workflow_schema_1_reroute_primitive_mute_and_bypass(runtime):
    workflow = {
        "version": 1, "state": {"lastNodeId": 8, "lastLinkId": 8},
        "nodes": [
            ui_node(1, "TestIntConstant", widgets=[10], outputs=[{"name": "INT", "type": "INT", "links": [1]}]),
            ui_node(2, "Reroute", inputs=[slot("", 1)], outputs=[{"name": "", "type": "*", "links": [2]}]),
            ui_node(3, "TestAdd", widgets=[0, 0], inputs=[slot("a", 2, "INT", True), slot("b", 3, "INT", True)],
                    outputs=[{"name": "sum", "type": "INT", "links": [4]}], mode=4),  # bypassed
            ui_node(4, "PrimitiveNode", widgets=[7, "fixed"], outputs=[{"name": "INT", "type": "INT", "links": [3, 6]}]),
            ui_node(5, "TestOutput", inputs=[slot("value", 4)]),
            ui_node(6, "TestIntConstant", widgets=[99], outputs=[{"name": "INT", "type": "INT", "links": [5]}], mode=2),
            ui_node(7, "TestAdd", widgets=[1, 1], inputs=[slot("a", 5, "INT", True), slot("b", 6, "INT", True)],
                    outputs=[{"name": "sum", "type": "INT", "links": [7]}]),
            ui_node(8, "TestOutput", inputs=[slot("value", 7)]),
        ],
        "links": [
            {"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "INT"},
            {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "INT"},
            {"id": 3, "origin_id": 4, "origin_slot": 0, "target_id": 3, "target_slot": 1, "type": "INT"},
            {"id": 4, "origin_id": 3, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "INT"},
            {"id": 5, "origin_id": 6, "origin_slot": 0, "target_id": 7, "target_slot": 0, "type": "INT"},
            {"id": 6, "origin_id": 4, "origin_slot": 0, "target_id": 7, "target_slot": 1, "type": "INT"},
            {"id": 7, "origin_id": 7, "origin_slot": 0, "target_id": 8, "target_slot": 0, "type": "INT"},
        ],
    }
    prompt = load_workflow_data(workflow, runtime.registry).prompt
    assert set(prompt) == {"1", "5", "7", "8"}  # virtual, muted and bypassed nodes are gone
    assert prompt["5"]["inputs"] == {"value": ["1", 0]}  # through the bypassed adder and the reroute
    # as in ComfyUI, an input fed by a muted node is dropped (not replaced by its widget value)
    assert prompt["7"]["inputs"] == {"b": 7}  # primitive node: a constant
    from tests.support.engine_fixtures import run

    outcome, _ = run(runtime, prompt)
    assert outcome.outputs == {"5": {"values": [10]}}
    assert outcome.node_errors["7"]["errors"][0]["type"] == "required_input_missing"


def test_unknown_node_types_surface_in_validation(runtime):
    workflow = {"nodes": [ui_node(1, "FancyCustomNode", widgets=[1])], "links": [], "version": 0.4}
    loaded = load_workflow_data(workflow, runtime.registry)
    assert loaded.warnings == ["unknown node type 'FancyCustomNode'"]
    assert validate_prompt(loaded.prompt, runtime.registry).error["type"] == "invalid_prompt"


def test_subgraphs_are_refused_clearly(runtime):
    workflow = {"nodes": [ui_node(1, "a1b2")], "links": [], "version": 0.4,
                "definitions": {"subgraphs": [{"id": "a1b2"}]}}
    with pytest.raises(WorkflowFormatError, match="subgraph"):
        load_workflow_data(workflow, runtime.registry)


def test_group_nodes_are_refused_clearly(runtime):
    workflow = {"nodes": [ui_node(1, "workflow>MyGroup")], "links": [], "version": 0.4}
    with pytest.raises(WorkflowFormatError, match="group node"):
        load_workflow_data(workflow, runtime.registry)


def test_our_format_round_trips_and_stores_inputs_by_name(runtime):
    prompt = {"1": node("TestIntConstant", value=3), "2": node("TestAdd", a=["1", 0], b=4),
              "3": {**node("TestOutput", value=["2", 0]), "_meta": {"title": "Result"}}}
    document = api_to_latentgraph(prompt)
    assert document["nodes"]["2"]["inputs"] == {"a": {"node": "1", "output": 0}, "b": 4}
    assert json.loads(json.dumps(document)) == document
    back = latentgraph_to_api(document, runtime.registry)
    assert back == prompt
    assert load_workflow_data(document, runtime.registry).source_format == "latentgraph"


def test_our_format_output_names_mute_and_bypass(runtime):
    document = {"format": "latentgraph.workflow", "version": 1, "nodes": {
        "1": {"type": "TestIntConstant", "inputs": {"value": 2}},
        "2": {"type": "TestAdd", "inputs": {"a": {"node": "1", "output": 0}, "b": 1}, "mode": "bypassed"},
        "3": {"type": "TestAdd", "inputs": {"a": {"node": "2", "output": "sum"}, "b": 10}},
        "4": {"type": "TestOutput", "inputs": {"value": {"node": "3", "output": 0}}},
        "5": {"type": "TestOutput", "inputs": {"value": {"node": "1", "output": 0}}, "mode": "muted"},
    }}
    prompt = latentgraph_to_api(document, runtime.registry)
    assert prompt["3"]["inputs"] == {"a": ["1", 0], "b": 10} and set(prompt) == {"1", "3", "4"}


def test_our_format_rejects_unknown_versions(runtime):
    with pytest.raises(WorkflowFormatError, match="version"):
        latentgraph_to_api({"format": "latentgraph.workflow", "version": 99, "nodes": {}})


def png_with(**texts):
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, json.dumps(value))
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_png_prefers_the_api_prompt_and_keeps_the_workflow(runtime, tmp_path):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0])}
    workflow = {"nodes": [], "links": [], "version": 0.4}
    path = tmp_path / "a.png"
    path.write_bytes(png_with(prompt=prompt, workflow=workflow))
    loaded = load_workflow_file(path, runtime.registry)
    assert loaded.source_format == "png:api" and loaded.prompt == prompt and loaded.workflow == workflow


def test_png_with_only_a_workflow_is_converted(runtime, tmp_path):
    workflow = {"nodes": [ui_node(1, "TestIntConstant", widgets=[4], outputs=[{"links": [1]}]),
                          ui_node(2, "TestOutput", inputs=[slot("value", 1)])],
                "links": [[1, 1, 0, 2, 0, "INT"]], "version": 0.4}
    path = tmp_path / "b.png"
    path.write_bytes(png_with(workflow=workflow))
    loaded = load_workflow_file(path, runtime.registry)
    assert loaded.source_format == "png:comfyui-ui" and loaded.prompt["2"]["inputs"] == {"value": ["1", 0]}


def test_png_text_reader_handles_compressed_chunks():
    info = PngInfo()
    info.add_itxt("prompt", '{"a": 1}', zip=True)
    info.add_text("workflow", "{}", zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG", pnginfo=info)
    assert read_png_text(buffer.getvalue()) == {"prompt": '{"a": 1}', "workflow": "{}"}


def test_png_without_metadata_and_garbage_files(runtime, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    (tmp_path / "plain.png").write_bytes(buffer.getvalue())
    with pytest.raises(WorkflowFormatError, match="no 'prompt' or 'workflow'"):
        load_workflow_file(tmp_path / "plain.png", runtime.registry)
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(WorkflowFormatError, match="not a workflow"):
        load_workflow_file(tmp_path / "x.json", runtime.registry)
    (tmp_path / "y.json").write_text("{nope")
    with pytest.raises(WorkflowFormatError, match="not JSON"):
        load_workflow_file(tmp_path / "y.json", runtime.registry)


def test_overrides_by_id_and_title():
    prompt = {"1": {**node("TestIntConstant", value=1), "_meta": {"title": "Start"}}}
    changed = apply_overrides(prompt, [("Start", "value", 5)])
    assert changed["1"]["inputs"]["value"] == 5 and prompt["1"]["inputs"]["value"] == 1
    assert apply_overrides(prompt, [("1", "value", 6)])["1"]["inputs"]["value"] == 6
    with pytest.raises(WorkflowFormatError):
        apply_overrides(prompt, [("Nope", "value", 1)])


def test_default_ui_workflow_converts_to_the_shipped_api_prompt(runtime):
    """The editor's default graph (KSampler with its control_after_generate slot, loaders,
    text encoders) converts exactly to the API prompt shipped beside it."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "workflows"
    ui, api = folder / "default_txt2img.workflow.json", folder / "default_txt2img.json"
    if not (ui.is_file() and api.is_file()):
        pytest.skip("default workflows not present")
    converted = load_workflow_file(ui, runtime.registry)
    expected = load_workflow_file(api, runtime.registry)
    assert converted.warnings == []
    assert {k: v["inputs"] for k, v in converted.prompt.items()} == {k: v["inputs"] for k, v in expected.prompt.items()}
    assert {k: v["class_type"] for k, v in converted.prompt.items()} == {k: v["class_type"] for k, v in expected.prompt.items()}
