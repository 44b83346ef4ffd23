/** Automatic left-to-right layout for graphs that come without positions (API prompts). */
import type { WorkflowDoc } from "./workflow";

export const COLUMN_GAP = 80;
export const ROW_GAP = 40;

/** Estimated node size when none is stored: width fixed, height from its value count. */
export function estimateSize(inputCount: number, outputCount: number): [number, number] {
  return [320, 46 + 24 * Math.max(outputCount, 0) + 28 * Math.max(inputCount, 1)];
}

/**
 * Place nodes in columns by longest path from a source, ordered inside a column by the
 * mean row of their producers (one barycentre pass keeps most links short and uncrossed).
 */
export function autoLayout(doc: WorkflowDoc, origin: [number, number] = [40, 40]): void {
  const preds = new Map<number, number[]>();
  for (const n of doc.nodes) preds.set(n.id, []);
  for (const l of doc.links) preds.get(l.to[0])?.push(l.from[0]);
  const depth = new Map<number, number>();
  const visiting = new Set<number>();
  const depthOf = (id: number): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0; // cycle guard: prompts are DAGs, but be safe
    visiting.add(id);
    const d = Math.max(-1, ...(preds.get(id) ?? []).filter((p) => preds.has(p)).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const columns: number[][] = [];
  for (const n of doc.nodes) (columns[depthOf(n.id)] ??= []).push(n.id);
  const byId = new Map(doc.nodes.map((n) => [n.id, n] as const));
  const row = new Map<number, number>();
  let x = origin[0];
  for (const col of columns) {
    if (!col) continue;
    col.sort((a, b) => {
      const mean = (id: number) => {
        const ps = (preds.get(id) ?? []).map((p) => row.get(p)).filter((r): r is number => r !== undefined);
        return ps.length ? ps.reduce((s, r) => s + r, 0) / ps.length : Number.MAX_SAFE_INTEGER;
      };
      return mean(a) - mean(b) || a - b;
    });
    let y = origin[1];
    let width = 0;
    col.forEach((id, i) => {
      const n = byId.get(id)!;
      const size = n.size ?? estimateSize(Object.keys(n.inputs).length, n.slots?.outputs.length ?? 1);
      n.size = size;
      n.pos = [x, y];
      row.set(id, i);
      y += size[1] + ROW_GAP;
      width = Math.max(width, size[0]);
    });
    x += width + COLUMN_GAP;
  }
}
