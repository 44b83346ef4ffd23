/**
 * How muted and bypassed nodes look, as in ComfyUI: a muted node is drawn faded (it and what only
 * it feeds will not run), a bypassed node is tinted purple (its inputs pass through). Drawn from
 * the node's mode on every frame, so it holds after reload, undo and inside groups.
 */
import type { LGraphCanvas, LGraphNode } from "@comfyorg/litegraph";

const MUTED = 2;
const BYPASSED = 4;

/** Canvas opacity and colours per mode; `null` means drawn as usual. */
export function modeStyle(mode: number): { alpha: number; color?: string; bgcolor?: string } | null {
  if (mode === MUTED) return { alpha: 0.35 };
  if (mode === BYPASSED) return { alpha: 0.6, color: "#7a3fa0", bgcolor: "#8e44c8" };
  return null;
}

/** Wrap litegraph's drawNode so each node is drawn in its mode's style. */
export function installModeRendering(canvas: LGraphCanvas): void {
  const c = canvas as unknown as { drawNode(node: LGraphNode, ctx: CanvasRenderingContext2D): void; editor_alpha: number };
  const draw = c.drawNode.bind(canvas);
  c.drawNode = (node, ctx) => {
    const style = modeStyle(node.mode as number);
    if (!style) return draw(node, ctx);
    const alpha = c.editor_alpha;
    const { color, bgcolor } = node;
    c.editor_alpha = alpha * style.alpha;
    if (style.color) node.color = style.color;
    if (style.bgcolor) node.bgcolor = style.bgcolor;
    try {
      draw(node, ctx);
    } finally {
      c.editor_alpha = alpha;
      node.color = color;
      node.bgcolor = bgcolor;
    }
  };
}

/** Opacity for a node's DOM overlays (prompt textareas), matching its canvas drawing. */
export function modeOpacity(mode: number): string {
  const style = modeStyle(mode);
  return style ? String(style.alpha) : "";
}
