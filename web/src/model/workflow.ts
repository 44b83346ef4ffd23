/**
 * Latentgraph's own workflow document: the editor graph with every node's values stored by
 * input NAME (never by widget position), so files survive node definitions gaining inputs and
 * nodes from missing packs still load as placeholders and round-trip unchanged.
 */

/** Marks the editor's in-memory document (session storage); saved files use fileFormat.ts. */
export const WORKFLOW_FORMAT = "latentgraph.editor-doc";
export const WORKFLOW_VERSION = 1;

export type NodeMode = "always" | "mute" | "bypass";
export type SeedControl = "fixed" | "increment" | "decrement" | "randomize";
export const SEED_CONTROLS: readonly SeedControl[] = ["fixed", "increment", "decrement", "randomize"];

export interface SlotDoc {
  name: string;
  type: string;
}

export interface NodeDoc {
  id: number;
  type: string;
  pos: [number, number];
  size?: [number, number];
  title?: string;
  mode?: NodeMode;
  color?: string;
  bgcolor?: string;
  collapsed?: boolean;
  /** Widget values keyed by input name. */
  inputs: Record<string, unknown>;
  /** control_after_generate per seed-like input name. */
  controls?: Record<string, SeedControl>;
  /** The node's sockets as last seen: lets a placeholder for an unknown type keep its links. */
  slots?: { inputs: SlotDoc[]; outputs: SlotDoc[] };
  /** Anything else a producer stored; kept verbatim. */
  extra?: Record<string, unknown>;
}

export interface LinkDoc {
  id: number;
  /** [origin node id, output index] */
  from: [number, number];
  /** [target node id, input name] */
  to: [number, string];
  type: string;
}

export interface GroupDoc {
  title: string;
  bounding: [number, number, number, number];
  color?: string;
}

export interface WorkflowDoc {
  format: typeof WORKFLOW_FORMAT;
  version: number;
  nodes: NodeDoc[];
  links: LinkDoc[];
  groups: GroupDoc[];
  view?: { scale: number; offset: [number, number] };
  extra?: Record<string, unknown>;
}

export function emptyWorkflow(): WorkflowDoc {
  return { format: WORKFLOW_FORMAT, version: WORKFLOW_VERSION, nodes: [], links: [], groups: [] };
}

export class WorkflowFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkflowFormatError";
  }
}

export function isOurWorkflow(data: unknown): data is WorkflowDoc {
  return !!data && typeof data === "object" && (data as { format?: unknown }).format === WORKFLOW_FORMAT;
}

function isPoint(v: unknown): v is [number, number] {
  return Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number" && Number.isFinite(x));
}

/** Check a parsed JSON value is a well-formed workflow; throws WorkflowFormatError saying where not. */
export function validateWorkflow(data: unknown): WorkflowDoc {
  if (!isOurWorkflow(data)) throw new WorkflowFormatError(`not a ${WORKFLOW_FORMAT} document`);
  const doc = data as WorkflowDoc;
  if (typeof doc.version !== "number" || doc.version > WORKFLOW_VERSION) {
    throw new WorkflowFormatError(`unsupported workflow version ${String(doc.version)}`);
  }
  if (!Array.isArray(doc.nodes) || !Array.isArray(doc.links)) {
    throw new WorkflowFormatError("workflow needs 'nodes' and 'links' arrays");
  }
  const ids = new Set<number>();
  doc.nodes.forEach((n, i) => {
    if (!n || typeof n !== "object") throw new WorkflowFormatError(`nodes[${i}] is not an object`);
    if (!Number.isInteger(n.id)) throw new WorkflowFormatError(`nodes[${i}].id must be an integer`);
    if (ids.has(n.id)) throw new WorkflowFormatError(`duplicate node id ${n.id}`);
    ids.add(n.id);
    if (typeof n.type !== "string" || !n.type) throw new WorkflowFormatError(`nodes[${i}].type missing`);
    if (!isPoint(n.pos)) throw new WorkflowFormatError(`nodes[${i}].pos must be [x, y]`);
    if (!n.inputs || typeof n.inputs !== "object") throw new WorkflowFormatError(`nodes[${i}].inputs must be an object`);
  });
  doc.links.forEach((l, i) => {
    if (!Number.isInteger(l.id)) throw new WorkflowFormatError(`links[${i}].id must be an integer`);
    if (!Array.isArray(l.from) || !ids.has(l.from[0]) || !Number.isInteger(l.from[1])) {
      throw new WorkflowFormatError(`links[${i}].from must be [existing node id, output index]`);
    }
    if (!Array.isArray(l.to) || !ids.has(l.to[0]) || typeof l.to[1] !== "string") {
      throw new WorkflowFormatError(`links[${i}].to must be [existing node id, input name]`);
    }
  });
  if (doc.groups !== undefined && !Array.isArray(doc.groups)) throw new WorkflowFormatError("groups must be an array");
  return { ...doc, groups: doc.groups ?? [] };
}

/** Deep copy through JSON: documents are plain data. */
export function cloneDoc<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export function nextNodeId(doc: WorkflowDoc): number {
  return doc.nodes.reduce((m, n) => Math.max(m, n.id), 0) + 1;
}

export function nextLinkId(doc: WorkflowDoc): number {
  return doc.links.reduce((m, l) => Math.max(m, l.id), 0) + 1;
}

/** Stable JSON with sorted object keys: used to compare documents and nodes. */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}
