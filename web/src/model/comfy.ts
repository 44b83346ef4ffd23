/**
 * Import ComfyUI files into our workflow document:
 * - UI format (litegraph serialization, schema 0.4 or 1): positional widgets_values are mapped to
 *   input names through the node definitions from /object_info;
 * - API format ({id: {class_type, inputs}}): rebuilt as a graph with automatic layout.
 */
import { autoLayout, estimateSize } from "./layout";
import { coerceNumber, type InputDef, type NodeDefs, widgetInputs } from "./nodedefs";
import { isApiLink, NOTE_TYPE, REROUTE_TYPE } from "./prompt";
import { isSeedControl } from "./seed";
import {
  emptyWorkflow,
  type GroupDoc,
  type LinkDoc,
  type NodeDoc,
  type NodeMode,
  type SlotDoc,
  WorkflowFormatError,
  type WorkflowDoc,
} from "./workflow";

interface ComfySlot {
  name?: string;
  type?: unknown;
  link?: number | null;
  links?: number[] | null;
  widget?: { name: string };
}

interface ComfyNode {
  id: number | string;
  type: string;
  pos?: [number, number] | Record<string, number>;
  size?: [number, number] | Record<string, number>;
  flags?: { collapsed?: boolean };
  mode?: number;
  inputs?: ComfySlot[];
  outputs?: ComfySlot[];
  title?: string;
  color?: string;
  bgcolor?: string;
  widgets_values?: unknown[] | Record<string, unknown>;
  properties?: Record<string, unknown>;
}

type ComfyLinkTuple = [number, number | string, number, number | string, number, unknown];
interface ComfyLinkObject {
  id: number;
  origin_id: number | string;
  origin_slot: number;
  target_id: number | string;
  target_slot: number;
  type?: unknown;
}

export interface ComfyWorkflow {
  nodes: ComfyNode[];
  links?: Array<ComfyLinkTuple | ComfyLinkObject | null>;
  groups?: Array<{ title?: string; bounding?: number[]; color?: string }>;
  extra?: Record<string, unknown>;
  version?: number;
}

export interface ImportReport {
  doc: WorkflowDoc;
  /** Human-readable notes: unknown node types, values that did not fit, skipped items. */
  warnings: string[];
}

export function isComfyUiWorkflow(data: unknown): data is ComfyWorkflow {
  return !!data && typeof data === "object" && Array.isArray((data as ComfyWorkflow).nodes) && !("format" in data);
}

export function isApiPrompt(data: unknown): data is Record<string, { class_type: string; inputs?: Record<string, unknown> }> {
  if (!data || typeof data !== "object" || Array.isArray(data)) return false;
  const values = Object.values(data as Record<string, unknown>);
  return (
    values.length > 0 &&
    values.every((v) => !!v && typeof v === "object" && typeof (v as { class_type?: unknown }).class_type === "string")
  );
}

function point(v: ComfyNode["pos"], fallback: [number, number]): [number, number] {
  if (Array.isArray(v) && v.length >= 2) return [Number(v[0]) || 0, Number(v[1]) || 0];
  if (v && typeof v === "object") return [Number(v["0"]) || 0, Number(v["1"]) || 0];
  return fallback;
}

function modeOf(mode: number | undefined): NodeMode | undefined {
  if (mode === 2) return "mute";
  if (mode === 4) return "bypass";
  return undefined;
}

function slotType(t: unknown): string {
  if (Array.isArray(t)) return "COMBO";
  if (t === -1 || t === undefined || t === null) return "*";
  return String(t);
}

function coerce(input: InputDef, v: unknown): unknown {
  if ((input.widget === "INT" || input.widget === "FLOAT") && typeof v === "number") return coerceNumber(input, v);
  return v;
}

/**
 * Map ComfyUI's positional widgets_values onto input names. ComfyUI inserts an extra value after
 * every control_after_generate input (the control mode) and after an image_upload combo (the
 * upload button's value), so those are consumed when present.
 */
export function mapWidgetValues(
  inputs: InputDef[],
  values: unknown[],
): { inputs: Record<string, unknown>; controls: Record<string, string>; leftover: unknown[] } {
  const out: Record<string, unknown> = {};
  const controls: Record<string, string> = {};
  let i = 0;
  for (const input of inputs) {
    if (i >= values.length) break;
    out[input.name] = coerce(input, values[i++]);
    if (input.controlAfterGenerate && i < values.length) {
      const c = values[i];
      if (isSeedControl(c)) {
        controls[input.name] = c;
        i++;
      } else if (typeof c === "boolean" || c === null) {
        i++; // very old files stored a boolean here
      }
    }
    if (input.imageUpload && values[i] === "image") i++;
  }
  return { inputs: out, controls, leftover: values.slice(i) };
}

function linkTuples(wf: ComfyWorkflow): ComfyLinkObject[] {
  const out: ComfyLinkObject[] = [];
  for (const l of wf.links ?? []) {
    if (!l) continue;
    if (Array.isArray(l)) {
      out.push({ id: l[0], origin_id: l[1], origin_slot: l[2], target_id: l[3], target_slot: l[4], type: l[5] });
    } else {
      out.push(l);
    }
  }
  return out;
}

/** A file saved before its node gained an input: the editor fills the default and says so. */
function missingInputWarning(type: string, id: number, input: InputDef): string {
  return `${type} #${id}: input '${input.name}' is missing from the file (saved before the node had it?); using its default ${JSON.stringify(input.default)}`;
}

/** Convert a ComfyUI UI-format workflow. */
export function importComfyUi(wf: ComfyWorkflow, defs: NodeDefs): ImportReport {
  if (!isComfyUiWorkflow(wf)) throw new WorkflowFormatError("not a ComfyUI workflow (no 'nodes' array)");
  const warnings: string[] = [];
  const doc = emptyWorkflow();
  const idMap = new Map<string, number>();
  let nextId = 1 + Math.max(0, ...wf.nodes.map((n) => (Number.isInteger(Number(n.id)) ? Number(n.id) : 0)));
  const comfyById = new Map<string, ComfyNode>();
  const primitives = new Map<string, unknown>();
  for (const cn of wf.nodes) {
    const key = String(cn.id);
    comfyById.set(key, cn);
    const numeric = Number(cn.id);
    const id = Number.isInteger(numeric) && numeric > 0 ? numeric : nextId++;
    idMap.set(key, id);
    if (cn.type === "PrimitiveNode") {
      // Front-end-only value source: its value is pushed into the targets below.
      primitives.set(key, Array.isArray(cn.widgets_values) ? cn.widgets_values[0] : undefined);
      continue;
    }
    const node: NodeDoc = {
      id,
      type: cn.type,
      pos: point(cn.pos, [0, 0]),
      inputs: {},
    };
    const size = point(cn.size, [0, 0]);
    if (size[0] > 0 && size[1] > 0) node.size = size;
    const mode = modeOf(cn.mode);
    if (mode) node.mode = mode;
    if (cn.color) node.color = cn.color;
    if (cn.bgcolor) node.bgcolor = cn.bgcolor;
    if (cn.flags?.collapsed) node.collapsed = true;
    const def = defs.get(cn.type);
    if (def && cn.title && cn.title !== def.displayName && cn.title !== def.name) node.title = cn.title;
    else if (!def && cn.title && cn.title !== cn.type) node.title = cn.title;
    if (cn.type === REROUTE_TYPE) {
      // no values
    } else if (cn.type === NOTE_TYPE || cn.type === "MarkdownNote") {
      node.type = NOTE_TYPE;
      node.inputs = { text: Array.isArray(cn.widgets_values) ? String(cn.widgets_values[0] ?? "") : "" };
    } else if (def) {
      const values = cn.widgets_values;
      if (Array.isArray(values)) {
        const mapped = mapWidgetValues(widgetInputs(def), values);
        node.inputs = mapped.inputs;
        if (Object.keys(mapped.controls).length) node.controls = mapped.controls as NodeDoc["controls"];
        if (mapped.leftover.length) {
          warnings.push(`${cn.type} #${id}: ${mapped.leftover.length} extra widget value(s) ignored`);
        }
      } else if (values && typeof values === "object") {
        for (const input of widgetInputs(def)) if (input.name in values) node.inputs[input.name] = coerce(input, values[input.name]);
      }
      const linked = new Set((cn.inputs ?? []).filter((s) => s.link != null).map((s) => s.widget?.name ?? s.name));
      for (const input of widgetInputs(def)) {
        if (!(input.name in node.inputs)) {
          node.inputs[input.name] = input.default;
          if (!linked.has(input.name)) warnings.push(missingInputWarning(cn.type, id, input));
        }
        if (input.widget === "COMBO" && input.choices.length && !input.choices.includes(node.inputs[input.name])) {
          warnings.push(`${cn.type} #${id}: '${input.name}' value ${JSON.stringify(node.inputs[input.name])} is not available here`);
        }
      }
    } else {
      warnings.push(`unknown node type '${cn.type}' (#${id}) loaded as a placeholder`);
      node.extra = { widgets_values: cn.widgets_values ?? [] };
    }
    node.slots = {
      inputs: (cn.inputs ?? []).filter((s) => !s.widget).map((s): SlotDoc => ({ name: String(s.name ?? ""), type: slotType(s.type) })),
      outputs: (cn.outputs ?? []).map((s): SlotDoc => ({ name: String(s.name ?? ""), type: slotType(s.type) })),
    };
    if (def) {
      node.slots = {
        inputs: def.inputs.filter((i) => i.widget === null).map((i) => ({ name: i.name, type: i.type })),
        outputs: def.outputs.map((o) => ({ name: o.name, type: o.type })),
      };
    }
    doc.nodes.push(node);
  }
  const byId = new Map(doc.nodes.map((n) => [n.id, n] as const));
  let linkId = 1;
  for (const l of linkTuples(wf)) {
    const from = comfyById.get(String(l.origin_id));
    const to = comfyById.get(String(l.target_id));
    if (!from || !to) continue;
    const target = byId.get(idMap.get(String(l.target_id))!);
    const inputName = to.inputs?.[l.target_slot]?.name ?? to.inputs?.[l.target_slot]?.widget?.name;
    if (!target || !inputName) continue;
    if (from.type === "PrimitiveNode") {
      target.inputs[inputName] = primitives.get(String(l.origin_id));
      continue;
    }
    doc.links.push({
      id: Number.isInteger(l.id) ? l.id : linkId,
      from: [idMap.get(String(l.origin_id))!, l.origin_slot],
      to: [target.id, inputName],
      type: slotType(l.type),
    });
    linkId = Math.max(linkId, Number(l.id) || 0) + 1;
  }
  doc.links = dedupeLinks(doc.links);
  for (const g of wf.groups ?? []) {
    const b = g.bounding ?? [];
    if (b.length !== 4) continue;
    const group: GroupDoc = { title: g.title ?? "Group", bounding: [b[0], b[1], b[2], b[3]] };
    if (g.color) group.color = g.color;
    doc.groups.push(group);
  }
  const ds = (wf.extra?.ds ?? null) as { scale?: number; offset?: number[] | Record<string, number> } | null;
  if (ds && typeof ds.scale === "number") {
    const off = point(ds.offset as ComfyNode["pos"], [0, 0]);
    doc.view = { scale: ds.scale, offset: off };
  }
  return { doc, warnings };
}

/** One link per input: a later link to the same input replaces an earlier one. */
function dedupeLinks(links: LinkDoc[]): LinkDoc[] {
  const byTarget = new Map<string, LinkDoc>();
  for (const l of links) byTarget.set(`${l.to[0]}:${l.to[1]}`, l);
  const ids = new Set<number>();
  return [...byTarget.values()].filter((l) => (ids.has(l.id) ? false : (ids.add(l.id), true)));
}

/** Convert a ComfyUI API prompt, laying the nodes out automatically. */
export function importApiPrompt(
  prompt: Record<string, { class_type: string; inputs?: Record<string, unknown>; _meta?: { title?: string } }>,
  defs: NodeDefs,
): ImportReport {
  if (!isApiPrompt(prompt)) throw new WorkflowFormatError("not an API prompt ({id: {class_type, inputs}})");
  const warnings: string[] = [];
  const doc = emptyWorkflow();
  const idMap = new Map<string, number>();
  let next = 1 + Math.max(0, ...Object.keys(prompt).map((k) => (/^\d+$/.test(k) ? Number(k) : 0)));
  for (const key of Object.keys(prompt)) idMap.set(key, /^\d+$/.test(key) && Number(key) > 0 ? Number(key) : next++);
  for (const [key, entry] of Object.entries(prompt)) {
    const def = defs.get(entry.class_type);
    const node: NodeDoc = { id: idMap.get(key)!, type: entry.class_type, pos: [0, 0], inputs: {} };
    const title = entry._meta?.title;
    if (title && title !== (def?.displayName ?? entry.class_type) && title !== entry.class_type) node.title = title;
    const socketSlots: SlotDoc[] = [];
    const linkedNames = new Set(Object.entries(entry.inputs ?? {}).filter(([, v]) => isApiLink(v)).map(([n]) => n));
    for (const [name, value] of Object.entries(entry.inputs ?? {})) {
      if (isApiLink(value)) {
        const src = prompt[value[0]];
        if (!src) {
          warnings.push(`${entry.class_type} #${node.id}: input '${name}' links to missing node ${value[0]}`);
          continue;
        }
        const srcDef = defs.get(src.class_type);
        const type = srcDef?.outputs[value[1]]?.type ?? def?.inputs.find((i) => i.name === name)?.type ?? "*";
        doc.links.push({ id: doc.links.length + 1, from: [idMap.get(value[0])!, value[1]], to: [node.id, name], type });
        const idef = def?.inputs.find((i) => i.name === name);
        if (!def || (idef && idef.widget === null)) socketSlots.push({ name, type });
      } else {
        const v = value && typeof value === "object" && "__value__" in (value as object) ? (value as { __value__: unknown }).__value__ : value;
        node.inputs[name] = v;
      }
    }
    if (def) {
      for (const input of widgetInputs(def)) {
        if (input.name in node.inputs) continue;
        node.inputs[input.name] = input.default;
        if (!linkedNames.has(input.name)) warnings.push(missingInputWarning(entry.class_type, node.id, input));
      }
      // Seeds in an API prompt are the values that ran: keep them fixed so re-running reproduces.
      const controls: Record<string, "fixed"> = {};
      for (const input of def.inputs) if (input.controlAfterGenerate) controls[input.name] = "fixed";
      if (Object.keys(controls).length) node.controls = controls;
      node.slots = {
        inputs: def.inputs.filter((i) => i.widget === null).map((i) => ({ name: i.name, type: i.type })),
        outputs: def.outputs.map((o) => ({ name: o.name, type: o.type })),
      };
      node.size = estimateSize(def.inputs.length, def.outputs.length);
    } else {
      warnings.push(`unknown node type '${entry.class_type}' (#${node.id}) loaded as a placeholder`);
      const outCount = Math.max(
        0,
        ...Object.values(prompt).flatMap((e) =>
          Object.values(e.inputs ?? {}).filter((v) => isApiLink(v) && v[0] === key).map((v) => (v as [string, number])[1] + 1),
        ),
      );
      node.slots = {
        inputs: socketSlots,
        outputs: Array.from({ length: outCount }, (_, i) => ({ name: `output ${i}`, type: "*" })),
      };
    }
    doc.nodes.push(node);
  }
  // Placeholder outputs take the type their consumers expect.
  for (const l of doc.links) {
    const src = doc.nodes.find((n) => n.id === l.from[0]);
    const slot = src && !defs.has(src.type) ? src.slots?.outputs[l.from[1]] : undefined;
    if (slot && slot.type === "*") slot.type = l.type;
  }
  autoLayout(doc);
  return { doc, warnings };
}
