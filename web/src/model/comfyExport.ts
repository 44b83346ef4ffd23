/**
 * Export to ComfyUI's UI workflow format (schema 0.4), so a graph made here opens in ComfyUI:
 * values are written positionally in widget order, with the control_after_generate value after
 * each seed and the upload button's value after an image_upload combo, as ComfyUI expects.
 */
import { type NodeDefs, widgetInputs } from "./nodedefs";
import { DEFAULT_SEED_CONTROL } from "./seed";
import type { WorkflowDoc } from "./workflow";

const MODE_NUMBER = { always: 0, mute: 2, bypass: 4 } as const;

interface ComfySlotOut {
  name: string;
  type: string;
  link?: number | null;
  links?: number[];
  widget?: { name: string };
  slot_index?: number;
}

export function toComfyUi(doc: WorkflowDoc, defs: NodeDefs): Record<string, unknown> {
  const nodes: Record<string, unknown>[] = [];
  const links: Array<[number, number, number, number, number, string]> = [];
  const inputIndex = new Map<string, number>(); // `${node}:${name}` -> slot index
  const outputs = new Map<number, ComfySlotOut[]>();
  const inputsOf = new Map<number, ComfySlotOut[]>();
  const linkedNames = new Set(doc.links.map((l) => `${l.to[0]}:${l.to[1]}`));

  for (const n of doc.nodes) {
    const def = defs.get(n.type);
    const ins: ComfySlotOut[] = [];
    if (def) {
      for (const input of def.inputs) {
        if (input.widget === null) ins.push({ name: input.name, type: input.type, link: null });
        else if (linkedNames.has(`${n.id}:${input.name}`)) ins.push({ name: input.name, type: input.type, link: null, widget: { name: input.name } });
      }
    } else {
      for (const s of n.slots?.inputs ?? []) ins.push({ name: s.name, type: s.type, link: null });
      for (const l of doc.links) if (l.to[0] === n.id && !ins.some((i) => i.name === l.to[1])) ins.push({ name: l.to[1], type: l.type, link: null });
    }
    ins.forEach((s, i) => inputIndex.set(`${n.id}:${s.name}`, i));
    inputsOf.set(n.id, ins);
    const outs = (def ? def.outputs.map((o) => ({ name: o.name, type: o.type })) : n.slots?.outputs ?? []).map(
      (o, i): ComfySlotOut => ({ name: o.name, type: o.type, links: [], slot_index: i }),
    );
    outputs.set(n.id, outs);
  }
  for (const l of doc.links) {
    const slot = inputIndex.get(`${l.to[0]}:${l.to[1]}`);
    const out = outputs.get(l.from[0])?.[l.from[1]];
    const input = slot === undefined ? undefined : inputsOf.get(l.to[0])?.[slot];
    if (slot === undefined || !out || !input) continue;
    links.push([l.id, l.from[0], l.from[1], l.to[0], slot, l.type]);
    out.links!.push(l.id);
    input.link = l.id;
  }
  for (const n of doc.nodes) {
    const def = defs.get(n.type);
    let widgetsValues: unknown[] = [];
    if (def) {
      for (const input of widgetInputs(def)) {
        widgetsValues.push(n.inputs[input.name] ?? input.default);
        if (input.controlAfterGenerate) widgetsValues.push(n.controls?.[input.name] ?? DEFAULT_SEED_CONTROL);
        if (input.imageUpload) widgetsValues.push("image");
      }
    } else if (Array.isArray(n.extra?.widgets_values)) {
      widgetsValues = n.extra.widgets_values as unknown[];
    } else {
      widgetsValues = Object.values(n.inputs);
    }
    const node: Record<string, unknown> = {
      id: n.id,
      type: n.type,
      pos: n.pos,
      size: n.size ?? [320, 120],
      flags: n.collapsed ? { collapsed: true } : {},
      order: nodes.length,
      mode: MODE_NUMBER[n.mode ?? "always"],
      inputs: inputsOf.get(n.id),
      outputs: outputs.get(n.id),
      properties: { "Node name for S&R": n.type },
      widgets_values: widgetsValues,
    };
    if (n.title) node.title = n.title;
    if (n.color) node.color = n.color;
    if (n.bgcolor) node.bgcolor = n.bgcolor;
    nodes.push(node);
  }
  return {
    last_node_id: doc.nodes.reduce((m, n) => Math.max(m, n.id), 0),
    last_link_id: doc.links.reduce((m, l) => Math.max(m, l.id), 0),
    nodes,
    links,
    groups: doc.groups.map((g) => ({ title: g.title, bounding: g.bounding, ...(g.color ? { color: g.color } : {}) })),
    config: {},
    extra: { ds: { scale: doc.view?.scale ?? 1, offset: doc.view?.offset ?? [0, 0] } },
    version: 0.4,
  };
}
