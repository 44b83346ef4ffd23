"""Editor benchmark: a 500-node / 955-link workflow in headless Debian chromium.

Measures how long opening the workflow takes (parse, build the canvas graph, first frame) and
the frame rate while panning and dragging a node, at zoom 1 and with all nodes on screen.
Targets (issue 6): load < 1 s, pan/drag >= 30 fps. Needs web/dist built and /usr/bin/chromium.

    .venv/bin/python bench/web.py [--cols 25 --rows 20]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.web.browser import launch_browser  # noqa: E402
from tests.web.server import RealServer  # noqa: E402

FRAME_PROBE = """() => {
  window.__frames = [];
  window.__recording = true;
  const tick = (t) => { if (!window.__recording) return; window.__frames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""

STOP_PROBE = """() => { window.__recording = false; const f = window.__frames;
  const d = []; for (let i = 1; i < f.length; i++) d.push(f[i] - f[i - 1]); return d; }"""


def grid_workflow(cols: int, rows: int) -> dict:
    """LoRA-loader-like nodes (2 inputs, 2 outputs, a combo and two number widgets), each fed by
    its left (MODEL) and upper (CLIP) neighbour: cols*rows nodes, 2*cols*rows-cols-rows links."""
    nodes = {}
    for r in range(rows):
        for c in range(cols):
            nid = r * cols + c + 1
            inputs: dict = {"lora_name": "style.safetensors", "strength_model": 1.0, "strength_clip": 0.5}
            if c > 0:
                inputs["model"] = {"node": str(nid - 1), "output": 0}
            if r > 0:
                inputs["clip"] = {"node": str(nid - cols), "output": 1}
            nodes[str(nid)] = {"type": "LoraLoader", "inputs": inputs,
                               "ui": {"pos": [c * 380, r * 190], "size": [320, 150]}}
    return {"format": "latentgraph.workflow", "version": 1, "nodes": nodes, "extra": {}}


def summarize(deltas: list[float]) -> dict:
    if not deltas:
        return {"fps": 0.0, "mean_ms": None, "p95_ms": None, "frames": 0}
    mean = statistics.fmean(deltas)
    p95 = sorted(deltas)[max(0, int(len(deltas) * 0.95) - 1)]
    return {"fps": round(1000.0 / mean, 1), "mean_ms": round(mean, 1), "p95_ms": round(p95, 1), "frames": len(deltas)}


def measure_motion(page, start: tuple[float, float], end: tuple[float, float], steps: int, pan_with_space: bool) -> dict:
    mouse = page.mouse
    mouse.move(*start)
    page.wait_for_timeout(350)
    if pan_with_space:
        page.keyboard.down(" ")
    page.evaluate(FRAME_PROBE)
    mouse.down()
    for i in range(1, steps + 1):
        mouse.move(start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
        page.wait_for_timeout(16)
    mouse.up()
    if pan_with_space:
        page.keyboard.up(" ")
    return summarize(page.evaluate(STOP_PROBE)[2:])


def run(cols: int, rows: int) -> dict:
    from playwright.sync_api import sync_playwright

    workflow = grid_workflow(cols, rows)
    with tempfile.TemporaryDirectory() as tmp:
        server = RealServer(Path(tmp))
        try:
            with sync_playwright() as pw:
                browser = launch_browser(pw)
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                page.goto(server.url + "/")
                page.wait_for_function("document.body.dataset.ready === 'true'", timeout=30000)
                loads = []
                for _ in range(3):
                    loads.append(page.evaluate(
                        """async (wf) => { const t0 = performance.now();
                             await window.app.files.openData(wf, 'Bench');
                             await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                             return performance.now() - t0; }""", workflow))
                counts = page.evaluate("() => { const d = window.app.editor.toDoc(); return [d.nodes.length, d.links.length]; }")
                save_ms = page.evaluate("() => { const t0 = performance.now(); JSON.stringify(window.app.files.currentFile()); return performance.now() - t0; }")
                box = page.evaluate("() => { const r = document.getElementById('graph-canvas').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }")
                cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
                # zoom 1, looking at the middle of the grid
                mid = rows // 2 * cols + cols // 2
                page.evaluate("""([id, w, h]) => { const e = window.app.editor, c = e.canvas, n = e.nodeById(id); c.ds.scale = 1;
                    c.ds.offset[0] = w / 2 - n.pos[0] - 100; c.ds.offset[1] = h / 2 - n.pos[1]; c.setDirty(true, true); }""", [mid, box[2], box[3]])
                pan_zoom1 = measure_motion(page, (cx, cy), (cx - 400, cy - 200), 60, True)
                node_title = page.evaluate("""() => { const e = window.app.editor; const n = e.nodeById(%d);
                    const p = e.canvas.ds.convertOffsetToCanvas([n.pos[0] + 80, n.pos[1] - 15]);
                    const r = e.canvas.canvas.getBoundingClientRect(); return [r.left + p[0], r.top + p[1]]; }""" % mid)
                before = page.evaluate("(id) => Array.from(window.app.editor.nodeById(id).pos)", mid)
                drag_zoom1 = measure_motion(page, tuple(node_title), (node_title[0] + 200, node_title[1] + 120), 60, False)
                drag_zoom1["node_moved"] = page.evaluate("(id) => Array.from(window.app.editor.nodeById(id).pos)", mid) != before
                # everything on screen
                page.evaluate("() => window.app.editor.fitView()")
                visible = page.evaluate("() => { const c = window.app.editor.canvas; c.draw(true, true); return c.visible_nodes.length; }")
                node_title = page.evaluate("""(id) => { const e = window.app.editor; const n = e.nodeById(id);
                    const p = e.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] - 15]);
                    const r = e.canvas.canvas.getBoundingClientRect(); return [r.left + p[0], r.top + p[1]]; }""", mid)
                before = page.evaluate("(id) => Array.from(window.app.editor.nodeById(id).pos)", mid)
                drag_fit = measure_motion(page, tuple(node_title), (node_title[0] + 150, node_title[1] + 90), 60, False)
                drag_fit["node_moved"] = page.evaluate("(id) => Array.from(window.app.editor.nodeById(id).pos)", mid) != before
                pan_fit = measure_motion(page, (cx, cy), (cx - 300, cy - 150), 60, True)
                browser.close()
        finally:
            server.stop()
    load_ms = sorted(loads)[len(loads) // 2]
    result = {
        "benchmark": "web-editor",
        "nodes": counts[0],
        "links": counts[1],
        "load_ms_median": round(load_ms, 1),
        "load_ms_runs": [round(x, 1) for x in loads],
        "save_serialize_ms": round(save_ms, 1),
        "visible_nodes_fit": visible,
        "pan_zoom1": pan_zoom1,
        "drag_zoom1": drag_zoom1,
        "pan_fit": pan_fit,
        "drag_fit": drag_fit,
        "load_under_1s": load_ms < 1000,
        "min_fps": min(pan_zoom1["fps"], drag_zoom1["fps"], pan_fit["fps"], drag_fit["fps"]),
    }
    result["fps_at_least_30"] = result["min_fps"] >= 30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cols", type=int, default=25)
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args()
    result = run(args.cols, args.rows)
    for key in ("pan_zoom1", "drag_zoom1", "pan_fit", "drag_fit"):
        print(f"{key:>10}: {result[key]['fps']} fps (p95 {result[key]['p95_ms']} ms)")
    print(f"load: {result['load_ms_median']} ms for {result['nodes']} nodes / {result['links']} links")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
