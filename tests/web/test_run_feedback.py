"""Browser tests: why each node ran or was cached (badges and the history's summary line), and
the history cards (state, number, time, duration) with their in-app image viewer."""

from __future__ import annotations

import pytest

from tests.web.test_running import small_run, wait_image

pytestmark = pytest.mark.browser

REPORTS = """() => Object.fromEntries(window.app.editor.nodes().filter(n => n.lgRuntime.report)
  .map(n => [n.type, n.lgRuntime.report.state + ':' + n.lgRuntime.report.reason]))"""


def run_and_wait(editor, count: int) -> None:
    editor.key("Control+Enter")
    editor.wait_for("(n) => document.querySelectorAll('.job-history').length === n && !window.app.run.runningPrompt",
                    count, timeout=60000)
    wait_image(editor)


def test_badges_and_history_say_why_nodes_ran(editor):
    small_run(editor, steps=2, control="increment")
    run_and_wait(editor, 1)
    first = editor.js(REPORTS)
    assert first["KSampler"].startswith("ran:") and first["SaveImage"].startswith("ran:")
    # Second run: only the seed changed, so the sampler and what follows ran, the rest is cached.
    run_and_wait(editor, 2)
    editor.wait_for("() => window.app.editor.nodes().find(n => n.type === 'KSampler').lgRuntime.report?.reason === 'input seed changed'")
    second = editor.js(REPORTS)
    assert second["KSampler"] == "ran:input seed changed"
    assert second["CheckpointLoaderSimple"] == "cached:cached"
    assert second["CLIPTextEncode"] == "cached:cached"
    card = editor.page.locator(".job-history").first  # newest first
    report = card.locator(".job-report").inner_text()
    assert "seed changed" in report and "cached" in report, report
    meta = card.locator(".job-meta").inner_text()
    assert meta.startswith("#"), meta
    assert " s" in meta, "the card shows the run's duration"
    # The canvas tooltip explains the badge under the pointer.
    ks = editor.node_id("KSampler")
    x, y = editor.to_screen(*editor.js("(id) => { const n = window.app.editor.nodeById(id); return [n.pos[0] + 40, n.pos[1] + 40]; }", ks))
    editor.page.mouse.move(x, y)
    editor.wait_for("() => document.getElementById('graph-canvas').title.includes('input seed changed')")
    editor.screenshot("run-badges")


def test_cancelled_job_is_shown_as_cancelled_not_error(editor):
    small_run(editor, steps=2000, control="increment")
    ids = [editor.js("() => window.app.run.queuePrompt(false)") for _ in range(2)]
    editor.wait_for("() => document.querySelectorAll('.job-running').length === 1 && document.querySelectorAll('.job-pending').length === 1",
                    timeout=30000)
    editor.page.locator(f".job-pending[data-prompt-id='{ids[1]}'] .job-cancel").click()
    editor.page.locator(f".job-running[data-prompt-id='{ids[0]}'] .job-cancel").click()
    editor.wait_for("() => document.querySelectorAll('.job-history').length === 2", timeout=30000)
    pills = editor.page.locator(".job-history .status-pill").all_inner_texts()
    assert [p.lower() for p in pills] == ["cancelled", "cancelled"], pills
    assert "error" not in editor.page.locator(".job-history").first.get_attribute("class")
    editor.screenshot("cancelled")


def test_history_image_opens_in_app_viewer(editor):
    small_run(editor, steps=2, control="fixed")
    editor.js("""() => { const e = window.app.editor;
        e.nodes().find(n => n.type === 'EmptyLatentImage').widgets.find(w => w.name === 'batch_size').value = 3;
        e.checkForChanges(); }""")
    run_and_wait(editor, 1)
    editor.wait_for("() => document.querySelectorAll('.job-history .thumbs img').length === 3")
    pages_before = len(editor.page.context.pages)
    editor.page.locator(".job-history .thumbs .thumb").nth(1).click()
    viewer = editor.page.locator(".image-viewer")
    viewer.wait_for()
    assert len(editor.page.context.pages) == pages_before, "no raw browser tab"
    caption = editor.page.locator(".viewer-caption")
    assert "(2 / 3)" in caption.inner_text()
    editor.wait_for("() => document.querySelector('.viewer-image').naturalWidth > 0")
    editor.page.keyboard.press("ArrowRight")
    assert "(3 / 3)" in caption.inner_text()
    editor.page.keyboard.press("ArrowRight")
    assert "(1 / 3)" in caption.inner_text(), "the arrows wrap around the run's images"
    editor.page.locator(".viewer-prev").click()
    assert "(3 / 3)" in caption.inner_text()
    download = editor.page.locator(".viewer-download")
    name = download.get_attribute("download")
    assert name and name.endswith(".png") and name in caption.inner_text()
    assert "/api/view?" in download.get_attribute("href")
    editor.screenshot("image-viewer")
    editor.page.keyboard.press("Escape")
    assert viewer.count() == 0
