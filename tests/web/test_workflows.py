"""Browser tests: saving, autosave and reload, tabs, the workflow browser, unknown-node
placeholders, ComfyUI UI/API imports and workflows embedded in dropped PNGs."""

from __future__ import annotations

import copy
import io
import json

import pytest
from PIL import Image, PngImagePlugin

pytestmark = pytest.mark.browser

COMFY_UI = {
    "last_node_id": 9, "last_link_id": 9, "version": 0.4, "config": {}, "extra": {"ds": {"scale": 0.9, "offset": [0, 0]}},
    "groups": [{"title": "Text", "bounding": [400, 100, 460, 500], "color": "#3f789e"}],
    "nodes": [
        {"id": 4, "type": "CheckpointLoaderSimple", "pos": [26, 474], "size": [315, 98], "flags": {}, "mode": 0, "inputs": [],
         "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}, {"name": "CLIP", "type": "CLIP", "links": [3, 5]},
                     {"name": "VAE", "type": "VAE", "links": [8]}], "properties": {}, "widgets_values": ["tiny-sd1.safetensors"]},
        {"id": 6, "type": "CLIPTextEncode", "pos": [415, 186], "size": [422, 164], "flags": {}, "mode": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 3}], "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [4]}],
         "properties": {}, "widgets_values": ["beautiful scenery nature glass bottle"]},
        {"id": 7, "type": "CLIPTextEncode", "pos": [413, 389], "size": [425, 180], "flags": {}, "mode": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 5}], "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [6]}],
         "properties": {}, "widgets_values": ["text, watermark"]},
        {"id": 5, "type": "EmptyLatentImage", "pos": [473, 609], "size": [315, 106], "flags": {}, "mode": 0, "inputs": [],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}], "properties": {}, "widgets_values": [64, 64, 1]},
        {"id": 3, "type": "KSampler", "pos": [863, 186], "size": [315, 262], "flags": {}, "mode": 0,
         "inputs": [{"name": "model", "type": "MODEL", "link": 1}, {"name": "positive", "type": "CONDITIONING", "link": 4},
                    {"name": "negative", "type": "CONDITIONING", "link": 6}, {"name": "latent_image", "type": "LATENT", "link": 2}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}], "properties": {},
         "widgets_values": [156680208700286, "fixed", 3, 8, "euler", "normal", 1]},
        {"id": 8, "type": "VAEDecode", "pos": [1209, 188], "size": [210, 46], "flags": {}, "mode": 0,
         "inputs": [{"name": "samples", "type": "LATENT", "link": 7}, {"name": "vae", "type": "VAE", "link": 8}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [9]}], "properties": {}},
        {"id": 9, "type": "SaveImage", "pos": [1451, 189], "size": [210, 58], "flags": {}, "mode": 0,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 9}], "outputs": [], "properties": {}, "widgets_values": ["ComfyUI"]},
    ],
    "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
              [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
              [9, 8, 0, 9, 0, "IMAGE"]],
}


def png_with_text(chunks: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 60, 90)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def wait_tabs(editor, n: int) -> None:
    editor.wait_for("(n) => window.app.workspace.tabs.length === n", n)
    editor.settle()


def check_comfy_import(editor) -> None:
    doc = editor.doc()
    ks = [n for n in doc["nodes"] if n["type"] == "KSampler"][0]
    assert ks["inputs"]["seed"] == 156680208700286 and ks["inputs"]["steps"] == 3
    assert ks["inputs"]["sampler_name"] == "euler" and ks["controls"] == {"seed": "fixed"}
    assert len(doc["links"]) == 9
    assert doc["groups"][0]["title"] == "Text"
    positive = [n for n in doc["nodes"] if n["id"] == 6][0]
    assert positive["inputs"]["text"] == "beautiful scenery nature glass bottle"


def test_autosave_then_reload_loses_nothing(editor):
    ks = editor.node_id("KSampler")
    editor.js("(id) => { const e = window.app.editor; const n = e.nodeById(id); n.widgets.find(w => w.name === 'steps').value = 31; n.title = 'Main sampler'; e.checkForChanges(); }", ks)
    editor.js("() => window.app.newWorkflow(window.app.editor.toDoc(), 'Second')")
    wait_tabs(editor, 2)
    editor.js("() => { const e = window.app.editor; e.nodes().find(n => n.type === 'EmptyLatentImage').widgets[0].value = 256; e.checkForChanges(); }")
    before_tabs = editor.js("() => window.app.workspace.tabs.map(t => t.path)")
    before_doc = editor.js("() => window.app.files.currentFile()")
    editor.wait_for("() => window.app.workspace.tabs.every(t => !t.dirty)")
    editor.reload()
    assert editor.js("() => window.app.workspace.tabs.map(t => t.path)") == before_tabs
    after = editor.js("() => window.app.files.currentFile()")
    assert after["nodes"] == before_doc["nodes"]
    # The first tab kept its own edits.
    editor.page.locator(".tab").first.click()
    editor.settle()
    assert editor.widget_value(ks, "steps") == 31
    assert [n.get("title") for n in editor.doc()["nodes"] if n["id"] == ks] == ["Main sampler"]
    # Autosave wrote the files the workflow browser lists, in the shared file format.
    editor.page.locator(".side-btn[data-panel='workflows']").click()
    editor.wait_for("() => document.querySelectorAll('.file-row').length === 2")
    saved = json.loads(editor.js("() => window.app.api.readUserFile('workflows/Second.json')"))
    assert saved["format"] == "latentgraph.workflow" and saved["nodes"]["5"]["inputs"]["width"] == 256
    editor.screenshot("workflow-browser")


def test_reload_in_a_new_browser_restores_from_the_server(editor, chromium):
    editor.js("() => { const e = window.app.editor; e.nodes().find(n => n.type === 'KSampler').title = 'From server'; e.checkForChanges(); }")
    editor.wait_for("() => window.app.workspace.tabs.every(t => !t.dirty)")
    editor.js("() => window.app.workspace.writeSessionNow()")
    editor.page.wait_for_timeout(300)
    other = chromium.new_context(viewport={"width": 1200, "height": 800})
    page = other.new_page()
    page.goto(editor.url + "/")
    page.wait_for_function("document.body.dataset.ready === 'true'")
    titles = page.evaluate("() => window.app.editor.toDoc().nodes.map(n => n.title)")
    other.close()
    assert "From server" in titles


def test_unknown_nodes_load_as_placeholders_and_round_trip_unchanged(editor):
    file = {
        "format": "latentgraph.workflow", "version": 1,
        "nodes": {
            "1": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}, "ui": {"pos": [0, 0], "size": [315, 98]}},
            "2": {"type": "FancyPackUpscaler", "title": "From a missing pack",
                  "inputs": {"model": {"node": "1", "output": 0}, "factor": 2.5, "modes": ["a", "b"], "prompt": "x\ny"},
                  "ui": {"pos": [400, 0], "size": [300, 160], "slots": {"inputs": [{"name": "model", "type": "MODEL"}],
                                                                      "outputs": [{"name": "MODEL", "type": "MODEL"}]}}},
            "3": {"type": "KSampler", "inputs": {"model": {"node": "2", "output": 0}, "seed": 5, "steps": 2, "cfg": 8.0,
                                                 "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
                  "ui": {"pos": [800, 0], "size": [330, 330], "controls": {"seed": "fixed"}}},
        },
        "extra": {"author": "test"},
    }
    editor.js("(f) => window.app.files.openData(f, 'Placeholders')", file)
    wait_tabs(editor, 2)
    placeholder = editor.js("() => { const n = window.app.editor.nodeById(2); return {title: n.title, inputs: n.inputs.map(i => i.name), outputs: n.outputs.map(o => o.type), widgets: n.widgets.map(w => [w.name, w.value])}; }")
    assert placeholder["title"] == "From a missing pack"
    assert placeholder["inputs"] == ["model"] and placeholder["outputs"] == ["MODEL"]
    assert ["factor", "2.5"] in placeholder["widgets"]
    assert editor.page.locator(".toast-warning").first.is_visible()
    editor.screenshot("placeholder")
    saved = editor.js("() => window.app.files.currentFile()")
    assert saved["nodes"]["2"] == file["nodes"]["2"]
    assert saved["nodes"]["3"]["inputs"] == file["nodes"]["3"]["inputs"]
    assert saved["extra"]["author"] == "test"
    # Queueing is refused with a clear message instead of a server error.
    editor.key("Control+Enter")
    editor.wait_for("() => [...document.querySelectorAll('.toast-error')].some(t => t.textContent.includes('FancyPackUpscaler'))")


def test_comfyui_ui_workflow_dropped_as_json_is_imported(editor):
    editor.drop_file("comfy.json", json.dumps(COMFY_UI).encode(), "application/json")
    wait_tabs(editor, 2)
    check_comfy_import(editor)
    prompt = editor.js("() => window.app.run.queuePrompt(false)")
    assert prompt


def test_png_with_comfyui_metadata_dropped_loads_its_workflow(editor):
    editor.drop_file("ComfyUI_00001_.png", png_with_text({"workflow": json.dumps(COMFY_UI), "prompt": "{}"}), "image/png")
    wait_tabs(editor, 2)
    check_comfy_import(editor)
    editor.screenshot("png-drop")


def test_png_with_only_an_api_prompt_is_laid_out_automatically(editor):
    api = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd1.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                                                   "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
    }
    editor.drop_file("api.png", png_with_text({"prompt": json.dumps(api)}), "image/png")
    wait_tabs(editor, 2)
    doc = editor.doc()
    assert len(doc["nodes"]) == 6 and len(doc["links"]) == 8
    xs = {n["id"]: n["pos"][0] for n in doc["nodes"]}
    assert xs[4] < xs[6] < xs[3] < xs[8] < xs[9]
    editor.screenshot("api-import")


def test_own_output_png_dropped_back_restores_the_exact_workflow(editor):
    editor.js("""() => { const e = window.app.editor; for (const n of e.nodes()) {
        if (n.type === 'EmptyLatentImage') { n.widgets[0].value = 64; n.widgets[1].value = 64; }
        if (n.type === 'KSampler') { n.widgets.find(w => w.name === 'steps').value = 2; n.widgets.find(w => w.name === 'control_after_generate').value = 'fixed'; n.title = 'Round trip';
          // A fresh seed: a cached SaveImage would hand back an older run's file and metadata.
          n.widgets.find(w => w.name === 'seed').value = Math.floor(Math.random() * 1e12); } }
        e.checkForChanges(); }""")
    sent = editor.js("() => window.app.files.currentFile()")
    editor.key("Control+Enter")
    editor.wait_for("() => window.app.editor.nodes().some(n => n.type === 'SaveImage' && n.lgRuntime.images.some(i => i.naturalWidth > 0))", timeout=60000)
    url = editor.js("() => window.app.editor.nodes().find(n => n.type === 'SaveImage').lgRuntime.images[0].src")
    data = editor.page.request.get(url).body()
    editor.drop_file("out.png", data, "image/png")
    wait_tabs(editor, 2)
    loaded = editor.js("() => window.app.files.currentFile()")
    strip = lambda f: {k: {kk: vv for kk, vv in v.items() if kk != "ui"} for k, v in f["nodes"].items()}  # noqa: E731
    assert strip(loaded) == strip(sent)


def test_saved_file_runs_the_same_prompt_in_the_engine_loader(editor):
    """The file the editor saves is the engine's format: the CLI would run exactly what we queue."""
    from engine.workflow import load_workflow_data

    editor.js("""() => { const e = window.app.editor; const dec = e.nodes().find(n => n.type === 'VAEDecode');
        dec.mode = 4; e.checkForChanges(); }""")  # a bypassed node exercises the pass-through rule too
    file = editor.js("() => window.app.files.currentFile()")
    ours = editor.js("() => window.app.files.currentPrompt()")
    loaded = load_workflow_data(copy.deepcopy(file), editor.server.runtime.registry)
    strip = lambda p: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in p.items()}  # noqa: E731
    assert strip(loaded.prompt) == strip(ours)


def test_comfyui_export_converts_to_the_same_prompt_in_the_engine(editor):
    """An independent reader of ComfyUI's format (engine.workflow) agrees with our export."""
    from engine.workflow import load_workflow_data

    editor.js("""() => { const e = window.app.editor; const ks = e.nodes().find(n => n.type === 'KSampler');
        ks.widgets.find(w => w.name === 'seed').value = 4242; ks.widgets.find(w => w.name === 'cfg').value = 5.5; e.checkForChanges(); }""")
    ui = editor.js("() => window.app.files.currentComfyUi()")
    ours = editor.js("() => window.app.files.currentPrompt()")
    loaded = load_workflow_data(copy.deepcopy(ui), editor.server.runtime.registry)
    strip = lambda p: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in p.items()}  # noqa: E731
    assert strip(loaded.prompt) == strip(ours)


def test_workflow_browser_opens_renames_and_deletes_files(editor):
    file = {"format": "latentgraph.workflow", "version": 1, "extra": {},
            "nodes": {"1": {"type": "EmptyLatentImage", "inputs": {"width": 128, "height": 96, "batch_size": 2}, "ui": {"pos": [0, 0]}}}}
    editor.js("(f) => window.app.api.writeUserFile('workflows/Saved elsewhere.json', JSON.stringify(f))", file)
    editor.page.locator(".side-btn[data-panel='workflows']").click()
    row = editor.page.locator(".file-row[data-path='workflows/Saved elsewhere.json']")
    row.wait_for()
    row.locator(".file-name").click()
    wait_tabs(editor, 2)
    assert [n["inputs"]["width"] for n in editor.doc()["nodes"]] == [128]
    # Rename through the browser: the open tab follows the file.
    row.hover()
    row.locator("button[title='Rename']").click()
    editor.page.locator(".modal-input").fill("Renamed")
    editor.page.keyboard.press("Enter")
    editor.page.locator(".file-row[data-path='workflows/Renamed.json']").wait_for()
    assert "workflows/Renamed.json" in editor.js("() => window.app.workspace.tabs.map(t => t.path)")
    # Delete it: gone from the list; the open tab keeps its content and is marked unsaved.
    renamed = editor.page.locator(".file-row[data-path='workflows/Renamed.json']")
    renamed.hover()
    renamed.locator("button[title='Delete']").click()
    editor.page.locator(".modal .btn-danger").click()
    editor.wait_for("() => !document.querySelector(\".file-row[data-path='workflows/Renamed.json']\")")
    # Closing the tab leaves one workflow open.
    editor.page.locator(".tab.active .tab-close").click()
    wait_tabs(editor, 1)
