"""Browser test: muted nodes are drawn faded and bypassed nodes tinted purple, as in ComfyUI;
the look follows the saved mode through a reload and inside a group. Colours are read back from
the canvas pixels, not from our own state."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# The colour of a node's body near its bottom-right corner (no widget there), and the canvas'.
PIXELS = """(ids) => { const e = window.app.editor; e.canvas.draw(true, true);
  const ctx = e.canvas.canvas.getContext('2d');
  const at = (x, y) => { const p = e.canvas.ds.convertOffsetToCanvas([x, y]);
    return Array.from(ctx.getImageData(Math.round(p[0]), Math.round(p[1]), 1, 1).data).slice(0, 3); };
  const out = {};
  for (const id of ids) { const n = e.nodeById(id); out[id] = at(n.pos[0] + n.size[0] - 6, n.pos[1] + n.size[1] - 4); }
  return out; }"""


def _dist(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5


def _check(editor, normal: int, muted: int, bypassed: int, behind: tuple[float, float]) -> None:
    """`behind`: a graph point with no node on it, showing what lies behind the nodes."""
    px = {int(k): v for k, v in editor.js(PIXELS, [normal, muted, bypassed]).items()}
    bg = editor.js("""([x, y]) => { const e = window.app.editor; const ctx = e.canvas.canvas.getContext('2d');
        const p = e.canvas.ds.convertOffsetToCanvas([x, y]);
        return Array.from(ctx.getImageData(Math.round(p[0]), Math.round(p[1]), 1, 1).data).slice(0, 3); }""", list(behind))
    # Muted: faded towards what lies behind it, so much nearer the backdrop than a normal node.
    assert _dist(px[muted], bg) < 0.5 * _dist(px[normal], bg), (px, bg)
    r, g, b = px[bypassed]
    assert b - g > 30 and r - g > 15, f"bypassed node is not purple: {px[bypassed]}"
    nr, ng, nb = px[normal]
    assert not (nb - ng > 30 and nr - ng > 15), "a normal node stays its usual colour"


def test_muted_and_bypassed_nodes_look_it_after_reload_and_in_a_group(editor):
    ks = editor.node_id("KSampler")
    latent = editor.node_id("EmptyLatentImage")
    decode = editor.node_id("VAEDecode")
    # Just outside the KSampler's bottom-left corner: canvas now, group body once grouped.
    behind = editor.js("(id) => { const n = window.app.editor.nodeById(id); return [n.pos[0] + 4, n.pos[1] + n.size[1] + 6]; }", ks)
    editor.js("""([m, b]) => { const e = window.app.editor; e.setMode([e.nodeById(m)], 'mute');
        e.setMode([e.nodeById(b)], 'bypass'); e.checkForChanges(); }""", [latent, decode])
    editor.settle()
    _check(editor, ks, latent, decode, behind)
    editor.screenshot("modes")
    # The same after a reload (the mode is saved with the workflow).
    editor.js("() => { window.app.syncActive(); window.app.workspace.writeSessionNow(); }")
    editor.reload()
    modes = {n["type"]: n.get("mode") for n in editor.doc()["nodes"]}
    assert modes["EmptyLatentImage"] == "mute" and modes["VAEDecode"] == "bypass"
    _check(editor, ks, latent, decode, behind)
    # And inside a group.
    editor.js("""(ids) => { const e = window.app.editor; e.canvas.deselectAll();
        for (const id of ids) e.canvas.select(e.nodeById(id)); e.groupSelected(); }""", [ks, latent, decode])
    editor.settle()
    assert len(editor.doc().get("groups") or editor.doc().get("extra", {}).get("ui", {}).get("groups", [])) == 1
    _check(editor, ks, latent, decode, behind)
    editor.screenshot("modes-in-group")
