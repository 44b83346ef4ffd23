/**
 * Undo/redo as a command log: each user action is recorded as the list of elementary
 * operations it performed on the document (node added/removed/changed, link added/removed,
 * groups changed), never as a copy of the whole graph. Undo applies the inverse operations.
 */
import { cloneDoc, type GroupDoc, type LinkDoc, type NodeDoc, stableStringify, type WorkflowDoc } from "./workflow";

export type Op =
  | { op: "addNode"; node: NodeDoc }
  | { op: "removeNode"; node: NodeDoc }
  | { op: "changeNode"; before: NodeDoc; after: NodeDoc }
  | { op: "addLink"; link: LinkDoc }
  | { op: "removeLink"; link: LinkDoc }
  | { op: "setGroups"; before: GroupDoc[]; after: GroupDoc[] };

export interface Command {
  label: string;
  ops: Op[];
}

/** Only the fields that changed between two versions of a node, for a compact log. */
function nodeKey(n: NodeDoc): string {
  return stableStringify(n);
}

/** The operations that turn `before` into `after` (the view is not part of the undo history). */
export function diffDocs(before: WorkflowDoc, after: WorkflowDoc): Op[] {
  const ops: Op[] = [];
  const a = new Map(before.nodes.map((n) => [n.id, n] as const));
  const b = new Map(after.nodes.map((n) => [n.id, n] as const));
  const la = new Map(before.links.map((l) => [l.id, l] as const));
  const lb = new Map(after.links.map((l) => [l.id, l] as const));
  // Links first out, nodes in, so applying in order never leaves a dangling link.
  for (const [id, l] of la) {
    const other = lb.get(id);
    if (!other || stableStringify(other) !== stableStringify(l)) ops.push({ op: "removeLink", link: cloneDoc(l) });
  }
  for (const [id, n] of a) if (!b.has(id)) ops.push({ op: "removeNode", node: cloneDoc(n) });
  for (const [id, n] of b) {
    const old = a.get(id);
    if (!old) ops.push({ op: "addNode", node: cloneDoc(n) });
    else if (nodeKey(old) !== nodeKey(n)) ops.push({ op: "changeNode", before: cloneDoc(old), after: cloneDoc(n) });
  }
  for (const [id, l] of lb) {
    const other = la.get(id);
    if (!other || stableStringify(other) !== stableStringify(l)) ops.push({ op: "addLink", link: cloneDoc(l) });
  }
  if (stableStringify(before.groups) !== stableStringify(after.groups)) {
    ops.push({ op: "setGroups", before: cloneDoc(before.groups), after: cloneDoc(after.groups) });
  }
  return ops;
}

export function invertOps(ops: Op[]): Op[] {
  return ops
    .slice()
    .reverse()
    .map((o): Op => {
      switch (o.op) {
        case "addNode":
          return { op: "removeNode", node: o.node };
        case "removeNode":
          return { op: "addNode", node: o.node };
        case "changeNode":
          return { op: "changeNode", before: o.after, after: o.before };
        case "addLink":
          return { op: "removeLink", link: o.link };
        case "removeLink":
          return { op: "addLink", link: o.link };
        case "setGroups":
          return { op: "setGroups", before: o.after, after: o.before };
      }
    });
}

/** Apply operations to a document (returns a new document; the input is not mutated). */
export function applyOps(doc: WorkflowDoc, ops: Op[]): WorkflowDoc {
  const out = cloneDoc(doc);
  for (const o of ops) {
    switch (o.op) {
      case "addNode":
        out.nodes = out.nodes.filter((n) => n.id !== o.node.id).concat(cloneDoc(o.node));
        break;
      case "removeNode":
        out.nodes = out.nodes.filter((n) => n.id !== o.node.id);
        out.links = out.links.filter((l) => l.from[0] !== o.node.id && l.to[0] !== o.node.id);
        break;
      case "changeNode":
        out.nodes = out.nodes.map((n) => (n.id === o.after.id ? cloneDoc(o.after) : n));
        break;
      case "addLink":
        out.links = out.links
          .filter((l) => l.id !== o.link.id && !(l.to[0] === o.link.to[0] && l.to[1] === o.link.to[1]))
          .concat(cloneDoc(o.link));
        break;
      case "removeLink":
        out.links = out.links.filter((l) => l.id !== o.link.id);
        break;
      case "setGroups":
        out.groups = cloneDoc(o.after);
        break;
    }
  }
  out.nodes.sort((x, y) => x.id - y.id);
  out.links.sort((x, y) => x.id - y.id);
  return out;
}

/** Describe a change for the Undo/Redo tooltips. */
export function describeOps(ops: Op[]): string {
  const count = (k: Op["op"]) => ops.filter((o) => o.op === k).length;
  if (count("addNode")) return `Add ${count("addNode")} node(s)`;
  if (count("removeNode")) return `Delete ${count("removeNode")} node(s)`;
  if (count("addLink") && !count("removeLink")) return "Connect";
  if (count("removeLink") && !count("addLink")) return "Disconnect";
  if (count("addLink")) return "Reconnect";
  if (count("setGroups")) return "Edit groups";
  const changes = ops.filter((o): o is Extract<Op, { op: "changeNode" }> => o.op === "changeNode");
  if (changes.length && changes.every((c) => stableStringify({ ...c.before, pos: 0 }) === stableStringify({ ...c.after, pos: 0 }))) {
    return changes.length > 1 ? `Move ${changes.length} nodes` : "Move node";
  }
  if (changes.length === 1) return `Edit ${changes[0].after.title ?? changes[0].after.type}`;
  return "Edit";
}

/** Bounded undo/redo stacks of commands. */
export class CommandLog {
  private done: Command[] = [];
  private undone: Command[] = [];

  constructor(private readonly limit = 200) {}

  record(ops: Op[], label = describeOps(ops)): void {
    if (!ops.length) return;
    this.done.push({ label, ops });
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
  }

  get canUndo(): boolean {
    return this.done.length > 0;
  }

  get canRedo(): boolean {
    return this.undone.length > 0;
  }

  peekUndo(): Command | undefined {
    return this.done[this.done.length - 1];
  }

  peekRedo(): Command | undefined {
    return this.undone[this.undone.length - 1];
  }

  /** The operations that undo the last command, or null. */
  undo(): Op[] | null {
    const c = this.done.pop();
    if (!c) return null;
    this.undone.push(c);
    return invertOps(c.ops);
  }

  redo(): Op[] | null {
    const c = this.undone.pop();
    if (!c) return null;
    this.done.push(c);
    return c.ops;
  }

  clear(): void {
    this.done = [];
    this.undone = [];
  }

  get size(): number {
    return this.done.length;
  }
}
