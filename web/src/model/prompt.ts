/**
 * Workflow document -> API prompt (the flat {id: {class_type, inputs}} DAG the server runs).
 * Muted nodes are left out, bypassed nodes and reroutes are looked through, front-end-only
 * nodes (notes) never reach the server.
 */
import type { NodeDefs } from "./nodedefs";
import { typesCompatible } from "./types";
import type { LinkDoc, NodeDoc, WorkflowDoc } from "./workflow";

export const REROUTE_TYPE = "Reroute";
export const NOTE_TYPE = "Note";
/** Node types that live only in the editor. */
export const VIRTUAL_TYPES = new Set([REROUTE_TYPE, NOTE_TYPE, "MarkdownNote"]);

export type ApiLink = [string, number];
export interface ApiNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title: string };
}
export type ApiPrompt = Record<string, ApiNode>;

export interface PromptResult {
  prompt: ApiPrompt;
  /** Node types the server does not know (placeholders); queueing them would fail. */
  missingTypes: string[];
}

interface Index {
  nodes: Map<number, NodeDoc>;
  /** target node id -> input name -> link */
  incoming: Map<number, Map<string, LinkDoc>>;
}

function index(doc: WorkflowDoc): Index {
  const nodes = new Map(doc.nodes.map((n) => [n.id, n] as const));
  const incoming = new Map<number, Map<string, LinkDoc>>();
  for (const l of doc.links) {
    if (!nodes.has(l.from[0]) || !nodes.has(l.to[0])) continue;
    let m = incoming.get(l.to[0]);
    if (!m) incoming.set(l.to[0], (m = new Map()));
    m.set(l.to[1], l);
  }
  return { nodes, incoming };
}

function outputType(node: NodeDoc, slot: number, defs: NodeDefs): string {
  return defs.get(node.type)?.outputs[slot]?.type ?? node.slots?.outputs[slot]?.type ?? "*";
}

/** Ordered input names of a node that carry links (sockets first, as the definition lists them). */
function inputTypes(node: NodeDoc, defs: NodeDefs): Map<string, string> {
  const m = new Map<string, string>();
  const def = defs.get(node.type);
  if (def) for (const i of def.inputs) m.set(i.name, i.type);
  for (const s of node.slots?.inputs ?? []) if (!m.has(s.name)) m.set(s.name, s.type);
  return m;
}

/**
 * Follow a link upstream past reroutes and bypassed nodes to the real producer.
 * Returns null when the chain ends at a muted node or nowhere.
 */
export function resolveSource(
  link: LinkDoc,
  idx: Index,
  defs: NodeDefs,
  seen: Set<number> = new Set(),
): ApiLink | null {
  const origin = idx.nodes.get(link.from[0]);
  if (!origin || seen.has(origin.id)) return null;
  const mode = origin.mode ?? "always";
  if (mode === "mute") return null;
  if (origin.type === REROUTE_TYPE) {
    const up = idx.incoming.get(origin.id)?.values().next().value as LinkDoc | undefined;
    return up ? resolveSource(up, idx, defs, new Set(seen).add(origin.id)) : null;
  }
  if (mode === "bypass") {
    const want = outputType(origin, link.from[1], defs);
    const ins = idx.incoming.get(origin.id);
    if (!ins) return null;
    const types = inputTypes(origin, defs);
    const names = [...types.keys()].filter((n) => ins.has(n));
    // Prefer the input at the same position among linked sockets, then the first type match.
    const ordered = [names[link.from[1]], ...names].filter((n): n is string => n !== undefined);
    for (const name of ordered) {
      const t = types.get(name) ?? "*";
      if (typesCompatible(t, want) && typesCompatible(want, t)) {
        return resolveSource(ins.get(name)!, idx, defs, new Set(seen).add(origin.id));
      }
    }
    return null;
  }
  if (VIRTUAL_TYPES.has(origin.type)) return null;
  return [String(origin.id), link.from[1]];
}

function wrapValue(v: unknown): unknown {
  return Array.isArray(v) ? { __value__: v } : v;
}

/** Convert the editor document into the API prompt the server queues. */
export function workflowToPrompt(doc: WorkflowDoc, defs: NodeDefs): PromptResult {
  const idx = index(doc);
  const prompt: ApiPrompt = {};
  const missing = new Set<string>();
  for (const node of doc.nodes) {
    const mode = node.mode ?? "always";
    if (mode === "mute" || mode === "bypass" || VIRTUAL_TYPES.has(node.type)) continue;
    const def = defs.get(node.type);
    if (!def) missing.add(node.type);
    const inputs: Record<string, unknown> = {};
    const known = def ? new Set(def.inputs.map((i) => i.name)) : null;
    for (const [name, value] of Object.entries(node.inputs)) {
      if (known && !known.has(name)) continue; // stale value of an input the class no longer has
      inputs[name] = wrapValue(value);
    }
    const links = idx.incoming.get(node.id);
    if (links) {
      for (const [name, link] of links) {
        const src = resolveSource(link, idx, defs);
        if (src) inputs[name] = src;
        else if (def?.inputs.find((i) => i.name === name)?.widget == null) delete inputs[name];
      }
    }
    const entry: ApiNode = { class_type: node.type, inputs };
    entry._meta = { title: node.title ?? def?.displayName ?? node.type };
    prompt[String(node.id)] = entry;
  }
  // A link may point at a node we dropped (e.g. an unresolvable chain); remove such inputs.
  for (const entry of Object.values(prompt)) {
    for (const [name, v] of Object.entries(entry.inputs)) {
      if (isApiLink(v) && !(v[0] in prompt)) delete entry.inputs[name];
    }
  }
  return { prompt, missingTypes: [...missing].sort() };
}

export function isApiLink(v: unknown): v is ApiLink {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "number";
}
