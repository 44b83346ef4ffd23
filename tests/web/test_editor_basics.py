"""Browser tests: the editor's first start, adding and wiring nodes, widgets, undo/redo."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_first_start_shows_the_default_text_to_image_workflow_wired(editor):
    doc = editor.doc()
    types = sorted(n["type"] for n in doc["nodes"])
    assert types == sorted(["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
                            "KSampler", "VAEDecode", "SaveImage"])
    assert len(doc["links"]) == 9
    ks = editor.node_id("KSampler")
    wired = {l["to"][1] for l in doc["links"] if l["to"][0] == ks}
    assert wired == {"model", "positive", "negative", "latent_image"}
    # Prompts are real text areas over the canvas.
    assert editor.page.locator("textarea.dom-textarea").count() == 2
    editor.screenshot("default-workflow")


def test_double_click_search_adds_a_node_and_a_drag_wires_it(editor):
    before = len(editor.doc()["nodes"])
    editor.open_search()
    dialog = editor.page.locator(".search-dialog")
    assert dialog.is_visible()
    editor.page.keyboard.type("invrt")  # fuzzy: letters in order, one missing
    assert editor.page.locator(".search-row").first.get_attribute("data-type") == "ImageInvert"
    editor.screenshot("search-dialog")
    editor.page.keyboard.press("Enter")
    editor.settle()
    assert not dialog.is_visible()
    assert len(editor.doc()["nodes"]) == before + 1
    inv = editor.node_id("ImageInvert")
    vae = editor.node_id("VAEDecode")
    editor.drag(editor.output_pos(vae, 0), editor.input_pos(inv, "image"))
    editor.wait_for("(id) => window.app.editor.toDoc().links.some(l => l.to[0] === id)", inv)
    link = [l for l in editor.links() if l["to"][0] == inv][0]
    assert link["from"] == [vae, 0] and link["to"][1] == "image" and link["type"] == "IMAGE"


def test_link_dropped_on_empty_canvas_opens_search_filtered_to_compatible_nodes(editor):
    ks = editor.node_id("KSampler")
    editor.drag(editor.output_pos(ks, 0), editor.empty_spot())
    editor.wait_for("() => document.querySelector('.search-dialog') !== null")
    chip = editor.page.locator(".search-filter").inner_text()
    assert "LATENT" in chip
    offered = editor.page.locator(".search-row").evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert "VAEDecode" in offered and "KSampler" in offered
    assert "CLIPTextEncode" not in offered and "SaveImage" not in offered
    editor.page.keyboard.type("upscale")
    editor.page.keyboard.press("Enter")
    editor.settle()
    up = editor.node_id("LatentUpscale")
    assert any(l["from"] == [ks, 0] and l["to"] == [up, "samples"] for l in editor.links())


def test_incompatible_sockets_do_not_connect(editor):
    ckpt = editor.node_id("CheckpointLoaderSimple")
    dec = editor.node_id("VAEDecode")
    before = editor.links()
    # MODEL output onto the LATENT input: refused.
    editor.drag(editor.output_pos(ckpt, 0), editor.input_pos(dec, "samples"))
    after = editor.links()
    assert sorted(map(editor.dump, after)) == sorted(map(editor.dump, before))


def test_widget_edits_and_moves_are_undone_and_redone_step_by_step(editor):
    ks = editor.node_id("KSampler")
    assert editor.widget_value(ks, "steps") == 20
    editor.page.mouse.click(*editor.widget_pos(ks, "steps", "right"))
    editor.settle()
    editor.wait_for("(id) => window.app.editor.log.size > 0", ks)
    assert editor.widget_value(ks, "steps") == 21
    start = editor.doc()["nodes"]
    pos0 = [n for n in start if n["id"] == ks][0]["pos"]
    title = editor.title_pos(ks)
    editor.drag(title, (title[0] + 120, title[1] + 60))
    editor.wait_for("(id) => window.app.editor.log.size > 1", ks)
    moved = [n for n in editor.doc()["nodes"] if n["id"] == ks][0]["pos"]
    assert moved != pos0
    editor.key("Control+z")
    assert [n for n in editor.doc()["nodes"] if n["id"] == ks][0]["pos"] == pos0
    assert editor.widget_value(ks, "steps") == 21
    editor.key("Control+z")
    assert editor.widget_value(ks, "steps") == 20
    editor.key("Control+y")
    assert editor.widget_value(ks, "steps") == 21
    editor.key("Control+y")
    assert [n for n in editor.doc()["nodes"] if n["id"] == ks][0]["pos"] == moved


def test_deleting_and_undoing_restores_node_and_its_links(editor):
    ks = editor.node_id("KSampler")
    before = editor.doc()
    editor.page.mouse.click(*editor.title_pos(ks))
    editor.key("Delete")
    editor.wait_for("(id) => !window.app.editor.toDoc().nodes.some(n => n.id === id)", ks)
    assert not any(ks in (l["from"][0], l["to"][0]) for l in editor.links())
    editor.key("Control+z")
    after = editor.doc()
    assert editor.dump(after["nodes"]) == editor.dump(before["nodes"])
    assert editor.dump(after["links"]) == editor.dump(before["links"])


def test_link_dragged_from_an_input_to_empty_canvas_offers_producers(editor):
    dec = editor.add_via_search("vae decode", "VAEDecode")
    a = editor.input_pos(dec, "vae")
    editor.drag(a, (a[0] - 260, a[1] + 30))
    editor.wait_for("() => document.querySelector('.search-dialog') !== null")
    assert "VAE" in editor.page.locator(".search-filter").inner_text()
    offered = editor.page.locator(".search-row").evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert "CheckpointLoaderSimple" in offered and "KSampler" not in offered
    editor.page.keyboard.press("Escape")
