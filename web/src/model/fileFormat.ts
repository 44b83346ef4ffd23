/**
 * The saved file format, shared with the engine and the CLI (docs/WORKFLOW_FORMAT.md):
 * `{"format": "latentgraph.workflow", "version": 1, "nodes": {id: {type, inputs, title?, mode?, ui?}}, "extra"}`
 * with every input stored by name and links written inside the inputs as {"node", "output"}.
 * Editor-only facts live where the engine ignores them: layout, colours, seed controls and the
 * sockets of unknown nodes in each node's `ui`; groups and the view in `extra.ui`.
 */
import type { NodeDefs } from "./nodedefs";
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

export const FILE_FORMAT = "latentgraph.workflow";
export const FILE_VERSION = 1;

export interface FileLink {
  node: string;
  output: number | string;
}

export interface FileNodeUi {
  pos?: [number, number];
  size?: [number, number];
  color?: string;
  bgcolor?: string;
  collapsed?: boolean;
  controls?: Record<string, string>;
  slots?: { inputs: SlotDoc[]; outputs: SlotDoc[] };
  [k: string]: unknown;
}

export interface FileNode {
  type: string;
  inputs: Record<string, unknown>;
  title?: string;
  mode?: "active" | "muted" | "bypassed";
  ui?: FileNodeUi;
  [k: string]: unknown;
}

export interface WorkflowFile {
  format: typeof FILE_FORMAT;
  version: number;
  nodes: Record<string, FileNode>;
  extra: Record<string, unknown>;
}

const MODE_OUT: Record<NodeMode, FileNode["mode"]> = { always: undefined, mute: "muted", bypass: "bypassed" };

export function isWorkflowFile(data: unknown): data is WorkflowFile {
  return (
    !!data &&
    typeof data === "object" &&
    (data as { format?: unknown }).format === FILE_FORMAT &&
    !!(data as { nodes?: unknown }).nodes &&
    typeof (data as { nodes?: unknown }).nodes === "object" &&
    !Array.isArray((data as { nodes?: unknown }).nodes)
  );
}

export function isFileLink(v: unknown): v is FileLink {
  if (!v || typeof v !== "object" || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 2 && keys.includes("node") && keys.includes("output");
}

/** Editor document -> file. Keys are written in a stable order so saves diff cleanly. */
export function toFile(doc: WorkflowDoc, defs: NodeDefs): WorkflowFile {
  const incoming = new Map<number, Map<string, LinkDoc>>();
  for (const l of doc.links) {
    let m = incoming.get(l.to[0]);
    if (!m) incoming.set(l.to[0], (m = new Map()));
    m.set(l.to[1], l);
  }
  const nodes: Record<string, FileNode> = {};
  for (const n of [...doc.nodes].sort((a, b) => a.id - b.id)) {
    const links = incoming.get(n.id) ?? new Map<string, LinkDoc>();
    const def = defs.get(n.type);
    const inputs: Record<string, unknown> = {};
    const order = def ? def.inputs.map((i) => i.name) : [];
    const names = [...order, ...Object.keys(n.inputs), ...links.keys()].filter((k, i, all) => all.indexOf(k) === i);
    for (const name of names) {
      const link = links.get(name);
      if (link) inputs[name] = { node: String(link.from[0]), output: link.from[1] } satisfies FileLink;
      else if (name in n.inputs) inputs[name] = n.inputs[name];
    }
    const out: FileNode = { type: n.type, inputs };
    if (n.title !== undefined) out.title = n.title;
    const mode = MODE_OUT[n.mode ?? "always"];
    if (mode) out.mode = mode;
    const ui: FileNodeUi = { pos: n.pos };
    if (n.size) ui.size = n.size;
    if (n.color) ui.color = n.color;
    if (n.bgcolor) ui.bgcolor = n.bgcolor;
    if (n.collapsed) ui.collapsed = true;
    if (n.controls && Object.keys(n.controls).length) ui.controls = { ...n.controls };
    // Sockets are only needed to draw a node whose definition is missing.
    if (!def && n.slots) ui.slots = n.slots;
    if (n.extra) Object.assign(ui, { extra: n.extra });
    out.ui = ui;
    nodes[String(n.id)] = out;
  }
  const extraUi: Record<string, unknown> = {};
  if (doc.groups.length) extraUi.groups = doc.groups;
  if (doc.view) extraUi.view = doc.view;
  const extra: Record<string, unknown> = { ...(doc.extra ?? {}) };
  if (Object.keys(extraUi).length) extra.ui = extraUi;
  else delete extra.ui;
  return { format: FILE_FORMAT, version: FILE_VERSION, nodes, extra };
}

/** File -> editor document; throws WorkflowFormatError naming the problem. */
export function fromFile(file: unknown, defs: NodeDefs): WorkflowDoc {
  if (!file || typeof file !== "object" || (file as { format?: unknown }).format !== FILE_FORMAT) {
    throw new WorkflowFormatError(`not a ${FILE_FORMAT} file`);
  }
  const f = file as WorkflowFile;
  if (f.version !== FILE_VERSION) throw new WorkflowFormatError(`${FILE_FORMAT} version ${String(f.version)} is not supported (expected ${FILE_VERSION})`);
  if (!f.nodes || typeof f.nodes !== "object" || Array.isArray(f.nodes)) {
    throw new WorkflowFormatError(`${FILE_FORMAT}: 'nodes' must be an object keyed by node id`);
  }
  const doc = emptyWorkflow();
  const ids = new Map<string, number>();
  const keys = Object.keys(f.nodes);
  let next = 1 + Math.max(0, ...keys.map((k) => (/^\d+$/.test(k) ? Number(k) : 0)));
  for (const key of keys) ids.set(key, /^\d+$/.test(key) && Number(key) > 0 ? Number(key) : next++);
  // Output counts of unknown nodes, learned from the links that use them.
  const usedOutputs = new Map<string, number>();
  for (const node of Object.values(f.nodes)) {
    for (const v of Object.values(node?.inputs ?? {})) {
      if (isFileLink(v) && typeof v.output === "number") usedOutputs.set(String(v.node), Math.max(usedOutputs.get(String(v.node)) ?? 0, v.output + 1));
    }
  }
  let linkId = 1;
  for (const key of keys) {
    const fn = f.nodes[key];
    if (!fn || typeof fn !== "object" || typeof fn.type !== "string" || !fn.type) {
      throw new WorkflowFormatError(`${FILE_FORMAT}: node ${JSON.stringify(key)} needs a 'type'`);
    }
    const id = ids.get(key)!;
    const def = defs.get(fn.type);
    const ui = (fn.ui ?? {}) as FileNodeUi;
    const node: NodeDoc = { id, type: fn.type, pos: point(ui.pos) ?? [0, 0], inputs: {} };
    const size = point(ui.size);
    if (size) node.size = size;
    if (typeof fn.title === "string") node.title = fn.title;
    if (fn.mode === "muted") node.mode = "mute";
    else if (fn.mode === "bypassed") node.mode = "bypass";
    if (typeof ui.color === "string") node.color = ui.color;
    if (typeof ui.bgcolor === "string") node.bgcolor = ui.bgcolor;
    if (ui.collapsed === true) node.collapsed = true;
    if (ui.controls && typeof ui.controls === "object") node.controls = { ...ui.controls } as NodeDoc["controls"];
    if (ui.extra && typeof ui.extra === "object") node.extra = ui.extra as Record<string, unknown>;
    const socketSlots: SlotDoc[] = [];
    for (const [name, value] of Object.entries(fn.inputs ?? {})) {
      if (!isFileLink(value)) {
        node.inputs[name] = value;
        continue;
      }
      const src = f.nodes[String(value.node)];
      const srcId = ids.get(String(value.node));
      if (!src || srcId === undefined) throw new WorkflowFormatError(`${FILE_FORMAT}: node ${key} links to unknown node ${JSON.stringify(value.node)}`);
      const srcDef = defs.get(src.type);
      let slot: number;
      if (typeof value.output === "number") slot = value.output;
      else {
        slot = srcDef?.outputs.findIndex((o) => o.name === value.output) ?? -1;
        if (slot < 0) throw new WorkflowFormatError(`${src.type} has no output named ${JSON.stringify(value.output)}`);
      }
      const type =
        srcDef?.outputs[slot]?.type ??
        (src.ui?.slots as FileNodeUi["slots"])?.outputs[slot]?.type ??
        def?.inputs.find((i) => i.name === name)?.type ??
        "*";
      doc.links.push({ id: linkId++, from: [srcId, slot], to: [id, name], type });
      socketSlots.push({ name, type });
    }
    if (def) {
      node.slots = {
        inputs: def.inputs.filter((i) => i.widget === null).map((i) => ({ name: i.name, type: i.type })),
        outputs: def.outputs.map((o) => ({ name: o.name, type: o.type })),
      };
      for (const input of def.inputs) {
        if (input.widget !== null && !(input.name in node.inputs) && !socketSlots.some((s) => s.name === input.name)) {
          node.inputs[input.name] = input.default;
        }
      }
    } else if (ui.slots && Array.isArray(ui.slots.inputs) && Array.isArray(ui.slots.outputs)) {
      node.slots = { inputs: ui.slots.inputs.map((s) => ({ ...s })), outputs: ui.slots.outputs.map((s) => ({ ...s })) };
    } else {
      const outs = usedOutputs.get(key) ?? 0;
      node.slots = {
        inputs: socketSlots,
        outputs: Array.from({ length: outs }, (_, i) => ({ name: `output ${i}`, type: "*" })),
      };
    }
    doc.nodes.push(node);
  }
  // Unknown nodes' outputs take the type their consumers expect.
  for (const l of doc.links) {
    const src = doc.nodes.find((n) => n.id === l.from[0]);
    if (src && !defs.has(src.type) && src.slots?.outputs[l.from[1]]?.type === "*") {
      const consumer = doc.nodes.find((n) => n.id === l.to[0]);
      const t = defs.get(consumer?.type ?? "")?.inputs.find((i) => i.name === l.to[1])?.type;
      if (t) src.slots.outputs[l.from[1]].type = t;
    }
  }
  const extra = { ...(f.extra ?? {}) } as Record<string, unknown>;
  const extraUi = (extra.ui ?? {}) as { groups?: GroupDoc[]; view?: WorkflowDoc["view"] };
  delete extra.ui;
  if (Array.isArray(extraUi.groups)) doc.groups = extraUi.groups.filter((g) => Array.isArray(g?.bounding) && g.bounding.length === 4);
  if (extraUi.view && typeof extraUi.view.scale === "number") doc.view = extraUi.view;
  if (Object.keys(extra).length) doc.extra = extra;
  doc.nodes.sort((a, b) => a.id - b.id);
  return doc;
}

function point(v: unknown): [number, number] | undefined {
  return Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number" && Number.isFinite(x))
    ? [v[0] as number, v[1] as number]
    : undefined;
}
