"""Helpers that drive the editor like a user: graph state is read through window.app, while
clicks, drags and keys go through real pointer and keyboard events on the canvas."""

from __future__ import annotations

import base64
import json
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class EditorPage:
    def __init__(self, page, url: str, shots: Path, name: str) -> None:
        self.page = page
        self.url = url
        self.shots = shots
        self.name = name

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        self.page.goto(self.url + "/")
        self.page.wait_for_function("document.body.dataset.ready === 'true'", timeout=15000)
        self.settle()

    def reload(self) -> None:
        self.page.reload()
        self.page.wait_for_function("document.body.dataset.ready === 'true'", timeout=15000)
        self.settle()

    def settle(self) -> None:
        """Wait two animation frames so canvas work and change detection have run."""
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def screenshot(self, label: str) -> Path:
        path = self.shots / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path))
        return path

    # ------------------------------------------------------------ graph state

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def doc(self) -> dict:
        return self.js("() => window.app.editor.toDoc()")

    def node_types(self) -> list[str]:
        return [n["type"] for n in self.doc()["nodes"]]

    def links(self) -> list[dict]:
        return self.doc()["links"]

    def node_id(self, type_: str, index: int = 0) -> int:
        return [n["id"] for n in self.doc()["nodes"] if n["type"] == type_][index]

    def widget_value(self, node_id: int, name: str):
        return self.js(
            "([id, name]) => window.app.editor.nodeById(id).widgets.find(w => w.name === name).value",
            [node_id, name],
        )

    def runtime(self, node_id: int) -> dict:
        return self.js(
            """(id) => { const r = window.app.editor.nodeById(id).lgRuntime;
                 return {progress: r.progress ?? null, running: !!r.running, cached: !!r.cached,
                         error: r.error ?? null, inputErrors: Object.fromEntries(r.inputErrors),
                         images: r.images.filter(i => i.complete && i.naturalWidth > 0).length,
                         preview: !!r.preview}; }""",
            node_id,
        )

    # ------------------------------------------------------------ coordinates

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        return tuple(
            self.js(
                """([x, y]) => { const c = window.app.editor.canvas; const r = c.canvas.getBoundingClientRect();
                     const p = c.ds.convertOffsetToCanvas([x, y]); return [r.left + p[0], r.top + p[1]]; }""",
                [x, y],
            )
        )

    def output_pos(self, node_id: int, slot: int) -> tuple[float, float]:
        p = self.js("([id, s]) => Array.from(window.app.editor.nodeById(id).getOutputPos(s))", [node_id, slot])
        return self.to_screen(*p)

    def input_pos(self, node_id: int, name: str) -> tuple[float, float]:
        p = self.js(
            """([id, name]) => { const n = window.app.editor.nodeById(id);
                 const i = n.findInputSlot(name); return Array.from(n.getInputPos(i)); }""",
            [node_id, name],
        )
        return self.to_screen(*p)

    def title_pos(self, node_id: int) -> tuple[float, float]:
        p = self.js("(id) => { const n = window.app.editor.nodeById(id); return [n.pos[0] + 60, n.pos[1] - 15]; }", node_id)
        return self.to_screen(*p)

    def widget_pos(self, node_id: int, name: str, where: str = "center") -> tuple[float, float]:
        p = self.js(
            """([id, name, where]) => { const n = window.app.editor.nodeById(id);
                 const w = n.widgets.find(w => w.name === name);
                 const x = where === 'right' ? n.pos[0] + n.size[0] - 25 : where === 'left' ? n.pos[0] + 25 : n.pos[0] + n.size[0] / 2;
                 return [x, n.pos[1] + w.y + 10]; }""",
            [node_id, name, where],
        )
        return self.to_screen(*p)

    def empty_spot(self) -> tuple[float, float]:
        """A point on the canvas with no node under it (below and right of everything)."""
        r = self.js("() => { const r = window.app.editor.canvas.canvas.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }")
        for fx, fy in ((0.5, 0.93), (0.93, 0.93), (0.1, 0.1), (0.93, 0.1), (0.1, 0.93)):
            x, y = r[0] + r[2] * fx, r[1] + r[3] * fy
            hit = self.js(
                """([x, y]) => { const c = window.app.editor.canvas; const r = c.canvas.getBoundingClientRect();
                     const p = c.ds.convertCanvasToOffset([x - r.left, y - r.top]);
                     return !!window.app.editor.graph.getNodeOnPos(p[0], p[1]); }""",
                [x, y],
            )
            if not hit:
                return x, y
        raise AssertionError("no empty spot on the canvas")

    # ------------------------------------------------------------ input

    def drag(self, a: tuple[float, float], b: tuple[float, float], steps: int = 12) -> None:
        m = self.page.mouse
        m.move(*a)
        # litegraph reads a press within 300 ms of the previous click as a double click.
        self.page.wait_for_timeout(320)
        m.down()
        m.move(*b, steps=steps)
        m.up()
        self.settle()

    def dblclick(self, p: tuple[float, float]) -> None:
        self.page.mouse.dblclick(*p)
        self.settle()

    def key(self, combo: str) -> None:
        self.page.locator("#graph-canvas").focus()
        self.page.keyboard.press(combo)
        self.settle()

    def drop_file(self, name: str, data: bytes, mime: str, at: tuple[float, float] | None = None) -> None:
        """Dispatch a real drop event carrying a file onto the canvas (at a screen point)."""
        self.page.evaluate(
            """([name, b64, mime, at]) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, {type: mime}));
                const target = document.getElementById('graph-canvas');
                const r = target.getBoundingClientRect();
                const [x, y] = at ?? [r.left + 40, r.top + 40];
                const opts = {dataTransfer: dt, bubbles: true, cancelable: true, clientX: x, clientY: y};
                target.dispatchEvent(new DragEvent('dragover', opts));
                target.dispatchEvent(new DragEvent('drop', opts));
            }""",
            [name, base64.b64encode(data).decode(), mime, list(at) if at else None],
        )

    def open_search(self, point: tuple[float, float] | None = None) -> None:
        """Double-click empty canvas until the search dialog is open. litegraph wants the two
        presses within 300 ms of each other; on a loaded 2-core machine one try may miss."""
        point = point or self.empty_spot()
        for _ in range(3):
            self.dblclick(point)
            if self.page.locator(".search-dialog").count():
                break
            self.page.wait_for_timeout(350)
        self.page.wait_for_selector(".search-dialog .search-input")

    def add_via_search(self, query: str, node_type: str) -> int:
        """Double-click empty canvas, type a query, pick the expected first hit; returns its id."""
        before = {n["id"] for n in self.doc()["nodes"]}
        self.open_search()
        self.page.keyboard.type(query)
        self.wait_for("(t) => document.querySelector('.search-row')?.dataset.type === t", node_type)
        self.page.keyboard.press("Enter")
        self.wait_for("(n) => window.app.editor.toDoc().nodes.length === n", len(before) + 1)
        return [n["id"] for n in self.doc()["nodes"] if n["id"] not in before][0]

    def wait_for(self, expr: str, arg=None, timeout: float = 10000) -> None:
        self.page.wait_for_function(expr, arg=arg, timeout=timeout)

    def load_doc(self, doc: dict) -> None:
        self.js("(d) => window.app.newWorkflow(d, 'Test')", doc)
        self.settle()

    def dump(self, obj) -> str:
        return json.dumps(obj, sort_keys=True)
