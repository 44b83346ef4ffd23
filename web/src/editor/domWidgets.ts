/**
 * Real <textarea> elements laid over the canvas for multiline text widgets (prompts, notes):
 * positioned from the node's widget rectangle and the canvas transform on every redraw, hidden
 * when the node is off screen, collapsed or drawn in low quality.
 */
import type { LGraphCanvas } from "@comfyorg/litegraph";
import { modeOpacity } from "./nodeModes";
import type { LgNode, LgWidget } from "./nodes";

interface Entry {
  el: HTMLTextAreaElement;
  node: LgNode;
  widget: LgWidget;
  seen: boolean;
}

export class DomWidgets {
  private readonly layer: HTMLDivElement;
  private readonly entries = new Map<LgWidget, Entry>();

  constructor(
    private readonly canvas: LGraphCanvas,
    private readonly onEdit: () => void,
  ) {
    this.layer = document.createElement("div");
    this.layer.className = "dom-widgets";
    canvas.canvas.parentElement?.appendChild(this.layer);
  }

  clear(): void {
    for (const e of this.entries.values()) e.el.remove();
    this.entries.clear();
  }

  /** Place every multiline widget's textarea; called after each canvas frame. */
  sync(nodes: LgNode[]): void {
    const ds = this.canvas.ds;
    const scale = ds.scale;
    const visible = new Set(this.canvas.visible_nodes as unknown as LgNode[]);
    const lowQuality = this.canvas.low_quality;
    for (const e of this.entries.values()) e.seen = false;
    for (const node of nodes) {
      if (!node.widgets) continue;
      for (const w of node.widgets as LgWidget[]) {
        if (!w.lgMultiline) continue;
        let entry = this.entries.get(w);
        if (!entry) entry = this.create(node, w);
        entry.seen = true;
        const show = visible.has(node) && !node.flags.collapsed && !lowQuality && node.graph != null;
        if (!show) {
          if (entry.el.style.display !== "none") entry.el.style.display = "none";
          continue;
        }
        const height = (w.computedHeight ?? 60) - 4;
        const x = (node.pos[0] + 15 + ds.offset[0]) * scale;
        const y = (node.pos[1] + w.y + ds.offset[1]) * scale;
        const style = entry.el.style;
        style.display = "block";
        style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
        style.width = `${node.size[0] - 30}px`;
        style.height = `${height}px`;
        const opacity = modeOpacity(node.mode as number);
        if (style.opacity !== opacity) style.opacity = opacity;
        const value = String(w.value ?? "");
        if (document.activeElement !== entry.el && entry.el.value !== value) entry.el.value = value;
        entry.el.disabled = node.inputs.some((i) => (i as { widget?: { name: string } }).widget?.name === w.name && i.link != null);
      }
    }
    for (const [w, e] of this.entries) {
      if (!e.seen) {
        e.el.remove();
        this.entries.delete(w);
      }
    }
  }

  private create(node: LgNode, widget: LgWidget): Entry {
    const el = document.createElement("textarea");
    el.className = "dom-textarea";
    el.spellcheck = false;
    el.placeholder = widget.name;
    el.dataset.nodeId = String(node.id);
    el.dataset.widget = widget.name;
    el.value = String(widget.value ?? "");
    el.addEventListener("input", () => {
      widget.value = el.value;
      this.onEdit();
    });
    // Keys typed here belong to the text, not to canvas shortcuts.
    el.addEventListener("keydown", (e) => e.stopPropagation());
    el.addEventListener("wheel", (e) => {
      if (el.scrollHeight > el.clientHeight) e.stopPropagation();
    });
    el.addEventListener("pointerdown", () => {
      this.canvas.selectNode(node as never);
    });
    this.layer.appendChild(el);
    const entry: Entry = { el, node, widget, seen: true };
    this.entries.set(widget, entry);
    return entry;
  }
}
