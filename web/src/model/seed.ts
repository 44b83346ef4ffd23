/** control_after_generate: how seed-like widgets change after each queued run. */
import type { NodeDefs } from "./nodedefs";
import { SEED_CONTROLS, type SeedControl, type WorkflowDoc } from "./workflow";

/** Largest integer we can represent exactly; seeds beyond it would silently round. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export function isSeedControl(v: unknown): v is SeedControl {
  return typeof v === "string" && (SEED_CONTROLS as readonly string[]).includes(v);
}

export function nextSeed(
  value: number,
  control: SeedControl,
  min: number,
  max: number,
  random: () => number = Math.random,
): number {
  const hi = Math.min(max, MAX_SAFE);
  switch (control) {
    case "fixed":
      return value;
    case "increment":
      return value + 1 > hi ? min : value + 1;
    case "decrement":
      return value - 1 < min ? hi : value - 1;
    case "randomize": {
      const span = hi - min;
      // Two draws so large ranges (e.g. 0..2^53) get all bits, not only Math.random's 52.
      const r = Math.floor(random() * 2 ** 26) * 2 ** 27 + Math.floor(random() * 2 ** 27);
      return min + (span >= MAX_SAFE ? r : r % (span + 1));
    }
  }
}

/** The default control for a fresh seed widget, as ComfyUI users expect. */
export const DEFAULT_SEED_CONTROL: SeedControl = "randomize";

/**
 * Return the values every seed widget takes after a run was queued, as
 * [nodeId, inputName, newValue] changes (empty when all are fixed).
 */
export function seedChanges(
  doc: WorkflowDoc,
  defs: NodeDefs,
  random: () => number = Math.random,
): Array<[number, string, number]> {
  const out: Array<[number, string, number]> = [];
  for (const node of doc.nodes) {
    const def = defs.get(node.type);
    if (!def) continue;
    for (const input of def.inputs) {
      if (!input.controlAfterGenerate) continue;
      const control = node.controls?.[input.name] ?? DEFAULT_SEED_CONTROL;
      const cur = node.inputs[input.name];
      if (typeof cur !== "number" || control === "fixed") continue;
      const next = nextSeed(cur, control, input.min ?? 0, input.max ?? MAX_SAFE, random);
      if (next !== cur) out.push([node.id, input.name, next]);
    }
  }
  return out;
}
