"""Browser tests: queueing from the editor and everything a run shows (progress, previews,
images, cached badges, used seeds, errors), and the queue panel (cancel, reorder, reload)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

WATCH_EVENTS = """() => {
  window.__seen = {progress: 0, previews: 0, types: []};
  window.app.api.addEventListener('message', e => {
    const m = e.detail; window.__seen.types.push(m.type);
    if (m.type === 'progress') window.__seen.progress = Math.max(window.__seen.progress, m.data.value / m.data.max);
  });
  window.app.api.addEventListener('preview', () => window.__seen.previews++);
}"""


def small_run(editor, steps: int = 3, control: str | None = None) -> None:
    """Shrink the default workflow so the tiny checkpoint runs it in a moment."""
    editor.js(
        """([steps, control]) => { const e = window.app.editor;
             const set = (type, name, v) => { for (const n of e.nodes()) if (n.type === type) n.widgets.find(w => w.name === name).value = v; };
             set('EmptyLatentImage', 'width', 64); set('EmptyLatentImage', 'height', 64); set('KSampler', 'steps', steps);
             if (control) set('KSampler', 'control_after_generate', control);
             e.checkForChanges(); }""",
        [steps, control],
    )


def wait_image(editor, node_type: str = "SaveImage", timeout: float = 60000) -> None:
    editor.wait_for(
        """(t) => window.app.editor.nodes().some(n => n.type === t && n.lgRuntime.images.some(i => i.complete && i.naturalWidth > 0))""",
        node_type, timeout=timeout)


def test_queue_default_workflow_shows_progress_preview_image_and_used_seed(editor):
    editor.js(WATCH_EVENTS)
    small_run(editor, steps=4)
    ks = editor.node_id("KSampler")
    seed_before = editor.widget_value(ks, "seed")
    editor.key("Control+Enter")
    wait_image(editor)
    editor.settle()
    seen = editor.js("() => window.__seen")
    assert seen["progress"] == 1.0
    assert seen["previews"] >= 1
    assert "execution_success" in seen["types"]
    save = editor.node_id("SaveImage")
    assert editor.runtime(save)["images"] == 1
    assert not editor.runtime(ks)["running"], "the highlight ends with the run"
    # randomize (the default) changed the seed after queueing; history shows the seed that ran.
    assert editor.widget_value(ks, "seed") != seed_before
    editor.wait_for("() => document.querySelectorAll('.job-history').length === 1")
    row = editor.page.locator(".job-history").first
    assert f"seed {seed_before}" in row.inner_text()
    assert row.locator(".thumbs img").count() == 1
    editor.wait_for("() => document.querySelector('.job-history .thumbs img').naturalWidth > 0")
    editor.screenshot("after-run")


def test_progress_bar_and_running_highlight_during_sampling(editor):
    small_run(editor, steps=60)
    ks = editor.node_id("KSampler")
    editor.page.locator("#queue-button").click()
    editor.wait_for("(id) => { const r = window.app.editor.nodeById(id).lgRuntime; return r.running && r.progress > 0 && r.progress < 1; }",
                    ks, timeout=60000)
    # The live sampler preview is drawn on the KSampler while it runs.
    editor.wait_for("(id) => { const r = window.app.editor.nodeById(id).lgRuntime; return !!r.preview || !r.running; }", ks, timeout=60000)
    editor.screenshot("sampling")
    wait_image(editor)
    assert editor.runtime(ks)["preview"] is False, "the preview goes away when the node is done"


def test_interrupt_button_stops_the_running_job(editor):
    small_run(editor, steps=2000, control="fixed")
    ks = editor.node_id("KSampler")
    editor.key("Control+Enter")
    editor.wait_for("(id) => window.app.editor.nodeById(id).lgRuntime.progress > 0", ks, timeout=60000)
    editor.page.locator("#interrupt-button").click()
    editor.wait_for("() => [...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Run stopped'))", timeout=30000)
    assert not editor.runtime(ks)["running"]


def test_second_identical_run_marks_cached_nodes(editor):
    small_run(editor, steps=2, control="fixed")
    editor.key("Control+Enter")
    wait_image(editor)
    editor.wait_for("() => !window.app.run.runningPrompt")
    ckpt = editor.node_id("CheckpointLoaderSimple")
    editor.key("Control+Enter")
    editor.wait_for("(id) => window.app.editor.nodeById(id).lgRuntime.cached", ckpt, timeout=60000)
    editor.screenshot("cached")


def test_validation_errors_are_marked_on_the_offending_widget(editor):
    ckpt = editor.node_id("CheckpointLoaderSimple")
    editor.js("(id) => { const w = window.app.editor.nodeById(id).widgets.find(w => w.name === 'ckpt_name'); w.value = 'missing.safetensors'; window.app.editor.checkForChanges(); }", ckpt)
    editor.key("Control+Enter")
    editor.wait_for("(id) => window.app.editor.nodeById(id).lgRuntime.inputErrors.size > 0", ckpt)
    rt = editor.runtime(ckpt)
    assert "ckpt_name" in rt["inputErrors"]
    assert editor.page.locator(".toast-error").first.is_visible()
    assert "validation" in editor.page.locator(".toast-error").first.inner_text().lower()
    editor.screenshot("validation-error")


def test_execution_error_is_shown_on_the_node_with_its_message(editor):
    """A checkpoint that is listed but cannot be read fails the run on its loader node."""
    broken = editor.server.base / "models" / "checkpoints" / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    try:
        editor.js("() => window.app.loadDefs()")  # the new file joins the loader's list
        ckpt = editor.node_id("CheckpointLoaderSimple")
        editor.js("""(id) => { const e = window.app.editor;
            e.nodeById(id).widgets.find(w => w.name === 'ckpt_name').value = 'broken.safetensors'; e.checkForChanges(); }""", ckpt)
        editor.key("Control+Enter")
        editor.wait_for("(id) => !!window.app.editor.nodeById(id).lgRuntime.error", ckpt, timeout=30000)
        assert "not a safetensors file" in editor.runtime(ckpt)["error"]
        assert "not a safetensors file" in editor.page.locator(".toast-error").first.inner_text()
        editor.screenshot("execution-error")
    finally:
        broken.unlink()


def test_cancel_and_reorder_from_the_queue_panel(editor):
    small_run(editor, steps=400, control="increment")
    ids = [editor.js("() => window.app.run.queuePrompt(false)") for _ in range(3)]
    assert all(ids)
    editor.wait_for("() => document.querySelectorAll('.job-running').length === 1 && document.querySelectorAll('.job-pending').length === 2",
                    timeout=30000)
    editor.screenshot("queue-panel")
    pending = editor.page.locator(".job-pending").evaluate_all("rows => rows.map(r => r.dataset.promptId)")
    assert pending == ids[1:]
    # Move the last job up: it now runs before the second one.
    editor.page.locator(f".job-pending[data-prompt-id='{ids[2]}'] .job-up").click()
    editor.wait_for("(id) => document.querySelector('.job-pending').dataset.promptId === id", ids[2])
    # Cancel a pending job: it leaves the queue.
    editor.page.locator(f".job-pending[data-prompt-id='{ids[1]}'] .job-cancel").click()
    editor.wait_for("(id) => !document.querySelector(`.job-pending[data-prompt-id='${id}']`)", ids[1])
    # Cancel the running job: it is interrupted, and the next one starts.
    editor.page.locator(f".job-running[data-prompt-id='{ids[0]}'] .job-cancel").click()
    editor.wait_for("(id) => document.querySelector('.job-running')?.dataset.promptId === id", ids[2], timeout=30000)
    editor.page.locator(f".job-running[data-prompt-id='{ids[2]}'] .job-cancel").click()
    editor.wait_for("() => !document.querySelector('.job-running') && !document.querySelector('.job-pending')", timeout=30000)


def test_history_reloads_a_past_workflow_into_a_new_tab(editor):
    small_run(editor, steps=2, control="fixed")
    editor.js("() => { const e = window.app.editor; e.nodes().find(n => n.type === 'KSampler').title = 'My sampler'; e.checkForChanges(); }")
    editor.key("Control+Enter")
    wait_image(editor)
    editor.wait_for("() => document.querySelectorAll('.job-history').length === 1")
    # Change the live workflow so reloading the past one is visible.
    editor.js("() => { const e = window.app.editor; e.nodes().find(n => n.type === 'KSampler').title = 'Changed'; e.checkForChanges(); }")
    editor.page.locator(".job-history button", has_text="Load workflow").click()
    editor.wait_for("() => window.app.workspace.tabs.length === 2")
    titles = [n.get("title") for n in editor.doc()["nodes"] if n["type"] == "KSampler"]
    assert titles == ["My sampler"]
    save = editor.node_id("SaveImage")
    editor.wait_for("(id) => window.app.editor.nodeById(id).lgRuntime.images.some(i => i.naturalWidth > 0)", save)
