"""Browser tests: copy/paste, bypass/mute, groups, reroutes, widget <-> input conversion,
image upload, renaming and colours from the context menu, model lists refreshing."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

pytestmark = pytest.mark.browser


def prompt(editor) -> dict:
    return editor.js("() => window.app.files.currentPrompt()")


def select(editor, node_id: int, add: bool = False) -> None:
    editor.js("([id, add]) => window.app.editor.canvas.selectNode(window.app.editor.nodeById(id), add)", [node_id, add])


def test_copy_paste_without_and_with_links(editor):
    enc = [n["id"] for n in editor.doc()["nodes"] if n["type"] == "CLIPTextEncode"][0]
    select(editor, enc)
    editor.key("Control+c")
    editor.page.mouse.move(*editor.empty_spot())
    editor.key("Control+v")
    editor.wait_for("() => window.app.editor.toDoc().nodes.filter(n => n.type === 'CLIPTextEncode').length === 3")
    doc = editor.doc()
    new = max(n["id"] for n in doc["nodes"])
    assert [n for n in doc["nodes"] if n["id"] == new][0]["inputs"]["text"] == [n for n in doc["nodes"] if n["id"] == enc][0]["inputs"]["text"]
    assert not any(l["to"][0] == new for l in doc["links"]), "plain paste keeps no input links"
    editor.key("Control+Shift+v")
    editor.wait_for("() => window.app.editor.toDoc().nodes.filter(n => n.type === 'CLIPTextEncode').length === 4")
    doc = editor.doc()
    newest = max(n["id"] for n in doc["nodes"])
    assert any(l["to"] == [newest, "clip"] for l in doc["links"]), "Ctrl+Shift+V keeps the input links"
    editor.key("Control+z")
    assert len([n for n in editor.doc()["nodes"] if n["type"] == "CLIPTextEncode"]) == 3


def test_bypass_and_mute_change_what_is_queued(editor):
    dec = editor.node_id("VAEDecode")
    select(editor, dec)
    editor.key("Control+b")
    assert [n.get("mode") for n in editor.doc()["nodes"] if n["id"] == dec] == ["bypass"]
    assert str(dec) not in prompt(editor)
    editor.screenshot("bypassed")
    editor.key("Control+b")
    editor.key("Control+m")
    assert [n.get("mode") for n in editor.doc()["nodes"] if n["id"] == dec] == ["mute"]
    p = prompt(editor)
    assert str(dec) not in p and "images" not in p[str(editor.node_id("SaveImage"))]["inputs"]
    editor.key("Control+z")
    assert str(dec) in prompt(editor), "undo of mute restores the active node"
    editor.key("Control+z")
    assert str(dec) not in prompt(editor), "one more undo restores the bypass"


def test_group_selected_nodes_and_undo(editor):
    a, b = editor.node_id("CLIPTextEncode", 0), editor.node_id("CLIPTextEncode", 1)
    select(editor, a)
    select(editor, b, True)
    editor.key("Control+g")
    groups = editor.doc()["groups"]
    assert len(groups) == 1
    x, y, w, h = groups[0]["bounding"]
    for nid in (a, b):
        n = [n for n in editor.doc()["nodes"] if n["id"] == nid][0]
        assert x <= n["pos"][0] and n["pos"][0] + n["size"][0] <= x + w
    editor.screenshot("group")
    editor.key("Control+z")
    assert editor.doc()["groups"] == []


def test_reroute_from_search_passes_the_link_through(editor):
    rr = editor.add_via_search("reroute", "Reroute")
    dec, save = editor.node_id("VAEDecode"), editor.node_id("SaveImage")
    editor.drag(editor.output_pos(dec, 0), editor.input_pos(rr, ""))
    editor.drag(editor.output_pos(rr, 0), editor.input_pos(save, "images"))
    editor.wait_for("([rr, save]) => window.app.editor.toDoc().links.some(l => l.from[0] === rr && l.to[0] === save)", [rr, save])
    p = prompt(editor)
    assert p[str(save)]["inputs"]["images"] == [str(dec), 0]
    assert str(rr) not in p


def test_widget_becomes_an_input_when_linked_and_back_when_unlinked(editor):
    ks = editor.node_id("KSampler")
    prim = editor.add_via_search("primitive int", "PrimitiveInt")
    editor.js("(id) => { const n = window.app.editor.nodeById(id); n.widgets[0].value = 1234; window.app.editor.checkForChanges(); }", prim)
    editor.drag(editor.output_pos(prim, 0), editor.widget_pos(ks, "steps", "left"))
    editor.wait_for("(id) => window.app.editor.toDoc().links.some(l => l.to[0] === id && l.to[1] === 'steps')", ks)
    assert prompt(editor)[str(ks)]["inputs"]["steps"] == [str(prim), 0]
    disabled = editor.js("(id) => window.app.editor.nodeById(id).widgets.find(w => w.name === 'steps').computedDisabled", ks)
    assert disabled
    editor.screenshot("widget-input")
    editor.key("Control+z")
    assert prompt(editor)[str(ks)]["inputs"]["steps"] == 20


def test_load_image_upload_shows_a_preview_and_is_selected(editor):
    node = editor.add_via_search("load image", "LoadImage")
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 60, 60)).save(buf, format="PNG")
    with editor.page.expect_file_chooser() as chooser:
        editor.page.mouse.click(*editor.widget_pos(node, "choose file to upload"))
    chooser.value.set_files(files=[{"name": "red.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    editor.wait_for("(id) => { const w = window.app.editor.nodeById(id).widgets[0]; return typeof w.value === 'string' && w.value.includes('red'); }", node)
    editor.wait_for("(id) => window.app.editor.nodeById(id).lgRuntime.images.some(i => i.naturalWidth === 48)", node)
    value = editor.widget_value(node, "image")
    assert value in editor.js("(id) => window.app.editor.nodeById(id).widgets[0].options.values", node)
    editor.screenshot("upload")


def test_rename_and_colour_from_the_context_menu(editor):
    ks = editor.node_id("KSampler")
    editor.page.mouse.click(*editor.title_pos(ks), button="right")
    editor.page.locator(".litemenu-entry", has_text="Rename").click()
    editor.page.locator(".modal-input").fill("Hero sampler")
    editor.page.keyboard.press("Enter")
    editor.wait_for("(id) => window.app.editor.toDoc().nodes.find(n => n.id === id).title === 'Hero sampler'", ks)
    editor.page.mouse.click(*editor.title_pos(ks), button="right")
    editor.page.locator(".litemenu-entry", has_text="Colors").click()
    editor.page.locator(".litemenu-entry", has_text="green").click()
    editor.wait_for("(id) => !!window.app.editor.toDoc().nodes.find(n => n.id === id).color", ks)
    editor.screenshot("renamed")
    assert prompt(editor)[str(ks)]["_meta"]["title"] == "Hero sampler"


def test_model_lists_refresh_from_the_server(editor):
    root = getattr(editor.server, "root", None) or getattr(editor.server, "base", None)
    ckpts = root / "models" / "checkpoints"
    ckpts.mkdir(parents=True, exist_ok=True)
    added = ckpts / "zz-brand-new.safetensors"
    added.write_bytes(b"")
    try:
        editor.key("r")
        ckpt = editor.node_id("CheckpointLoaderSimple")
        editor.wait_for("(id) => window.app.editor.nodeById(id).widgets[0].options.values.includes('zz-brand-new.safetensors')", ckpt)
    finally:
        added.unlink()


def test_box_select_then_move_moves_every_selected_node(editor):
    a, b = editor.node_id("CLIPTextEncode", 0), editor.node_id("CLIPTextEncode", 1)
    nodes = {n["id"]: n for n in editor.doc()["nodes"]}
    x0 = min(nodes[a]["pos"][0], nodes[b]["pos"][0]) - 20
    y0 = min(nodes[a]["pos"][1], nodes[b]["pos"][1]) - 50
    x1 = max(nodes[i]["pos"][0] + nodes[i]["size"][0] for i in (a, b)) + 20
    y1 = max(nodes[i]["pos"][1] + nodes[i]["size"][1] for i in (a, b)) + 20
    editor.page.keyboard.down("Control")
    editor.drag(editor.to_screen(x0, y0), editor.to_screen(x1, y1))
    editor.page.keyboard.up("Control")
    selected = editor.js("() => window.app.editor.selectedNodes().map(n => n.id).sort()")
    assert sorted(selected) == sorted([a, b])
    title = editor.title_pos(a)
    editor.drag(title, (title[0] + 100, title[1] + 40))
    editor.wait_for("(id) => window.app.editor.log.size > 0", a)
    after = {n["id"]: n for n in editor.doc()["nodes"]}
    for i in (a, b):
        assert after[i]["pos"] != nodes[i]["pos"]
    assert after[editor.node_id("KSampler")]["pos"] == nodes[editor.node_id("KSampler")]["pos"]
    assert editor.page.locator("#undo-button").get_attribute("title").startswith("Undo Move 2 nodes")


def test_node_library_lists_categories_and_adds_a_node(editor):
    editor.page.locator(".side-btn[data-panel='library']").click()
    editor.page.locator(".tree-cat[data-category='latent']").click()
    row = editor.page.locator(".tree-node[data-type='EmptyLatentImage']")
    assert row.is_visible()
    before = len(editor.doc()["nodes"])
    row.click()
    editor.wait_for("(n) => window.app.editor.toDoc().nodes.length === n", before + 1)
    editor.page.locator(".panel-filter").fill("vae dec")
    assert editor.page.locator(".tree-node").first.get_attribute("data-type") == "VAEDecode"
    editor.screenshot("library")


def test_export_api_prompt_downloads_the_queued_format(editor):
    editor.page.locator("#workflow-menu").click()
    with editor.page.expect_download() as download:
        editor.page.locator(".menu-item", has_text="Export API prompt").click()
    data = json.loads(open(download.value.path()).read())
    ks = str(editor.node_id("KSampler"))
    assert data[ks]["class_type"] == "KSampler" and data[ks]["inputs"]["model"] == [str(editor.node_id("CheckpointLoaderSimple")), 0]


def test_image_dropped_on_a_load_image_node_is_uploaded_into_it(editor):
    node = editor.add_via_search("load image", "LoadImage")
    buf = io.BytesIO()
    Image.new("RGB", (40, 24), (60, 160, 60)).save(buf, format="PNG")
    tabs = editor.js("() => window.app.workspace.tabs.length")
    editor.drop_file("green.png", buf.getvalue(), "image/png", at=editor.widget_pos(node, "image"))
    editor.wait_for("(id) => String(window.app.editor.nodeById(id).widgets[0].value).includes('green')", node)
    editor.wait_for("(id) => window.app.editor.nodeById(id).lgRuntime.images.some(i => i.naturalWidth === 40)", node)
    assert editor.js("() => window.app.workspace.tabs.length") == tabs, "an image for a node does not open a workflow"


def test_typing_in_a_prompt_is_saved_and_undoable_and_notes_hold_text(editor):
    area = editor.page.locator("textarea.dom-textarea").first
    node_id = int(area.get_attribute("data-node-id"))
    original = editor.js("(id) => window.app.editor.nodeById(id).widgets.find(w => w.name === 'text').value", node_id)
    area.click()
    editor.page.keyboard.press("Control+a")
    editor.page.keyboard.type("a red fox in the snow")
    editor.wait_for("(id) => window.app.editor.toDoc().nodes.find(n => n.id === id).inputs.text === 'a red fox in the snow'", node_id)
    editor.wait_for("() => window.app.editor.log.size > 0")
    assert editor.js("() => window.app.files.currentPrompt()")[str(node_id)]["inputs"]["text"] == "a red fox in the snow"
    editor.key("Control+z")
    assert editor.js("(id) => window.app.editor.toDoc().nodes.find(n => n.id === id).inputs.text", node_id) == original
    editor.wait_for("([id, t]) => document.querySelector(`textarea[data-node-id='${id}']`).value === t", [node_id, original])
    note = editor.add_via_search("note", "Note")
    note_area = editor.page.locator(f"textarea[data-node-id='{note}']")
    note_area.wait_for()
    note_area.click()
    editor.page.keyboard.type("remember: 64x64 for tests")
    editor.wait_for("(id) => window.app.editor.toDoc().nodes.find(n => n.id === id).inputs.text === 'remember: 64x64 for tests'", note)
    assert str(note) not in editor.js("() => window.app.files.currentPrompt()")
