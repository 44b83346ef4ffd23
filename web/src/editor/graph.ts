/**
 * The thin adapter between our workflow document and litegraph: load a document into the
 * canvas, read the canvas back as a document, detect user edits as command-log operations,
 * and draw run state (progress, running highlight, previews, images, errors, cached badges).
 * Everything above this file speaks WorkflowDoc only.
 */
import { LGraph, LGraphCanvas, LGraphGroup, LiteGraph, type LGraphNode } from "@comfyorg/litegraph";
import { applyOps, CommandLog, diffDocs, type Op } from "../model/commands";
import type { NodeDefs } from "../model/nodedefs";
import { NOTE_TYPE, REROUTE_TYPE } from "../model/prompt";
import { badgeText, badgeTooltip } from "../model/runReport";
import { isSeedControl } from "../model/seed";
import {
  cloneDoc,
  emptyWorkflow,
  type GroupDoc,
  type LinkDoc,
  type NodeDoc,
  type NodeMode,
  stableStringify,
  type WorkflowDoc,
} from "../model/workflow";
import { DomWidgets } from "./domWidgets";
import { installModeRendering } from "./nodeModes";
import {
  buildPlaceholder,
  type LgNode,
  type LgWidget,
  type NodeHooks,
  registerNodeClass,
  registerNoteClass,
  registerPlaceholderClass,
  registerRerouteClass,
  valueWidgets,
} from "./nodes";
import { applyTheme, ensureTypeColor, THEME } from "./theme";

const MODE_TO_LG: Record<NodeMode, number> = { always: 0, mute: 2, bypass: 4 };

function modeFromLg(mode: number): NodeMode | undefined {
  if (mode === 2) return "mute";
  if (mode === 4) return "bypass";
  return undefined;
}

const round = (v: number) => Math.round(v);

export interface LinkDropContext {
  node: LgNode;
  slot: number;
  /** true: the link was dragged from an output and needs an input. */
  fromOutput: boolean;
  type: string;
}

export interface MenuActions {
  renameNode(node: LgNode): void;
  searchAt(pos: [number, number], screen: [number, number]): void;
}

export interface EditorEvents extends MenuActions {
  onChange(ops: Op[]): void;
  onViewChange(): void;
  onSearchRequest(pos: [number, number], screen: [number, number], link: LinkDropContext | null): void;
  uploadImage(node: LgNode, widget: LgWidget): void;
  inputImageUrl(name: string): string;
}

export class GraphEditor {
  readonly graph: LGraph;
  readonly canvas: LGraphCanvas;
  log = new CommandLog();
  private defs: NodeDefs = new Map();
  private baseline: WorkflowDoc = emptyWorkflow();
  private checkScheduled = false;
  private suspended = 0;
  private readonly hooks: NodeHooks;
  private readonly dom: DomWidgets;
  private lastView = "";
  /** The loaded document's free-form `extra`, written back unchanged. */
  private docExtra: Record<string, unknown> | undefined;

  constructor(
    readonly element: HTMLCanvasElement,
    private readonly events: EditorEvents,
  ) {
    applyTheme();
    this.graph = new LGraph();
    this.canvas = new LGraphCanvas(element, this.graph);
    this.canvas.allow_searchbox = false;
    this.canvas.background_image = "";
    this.canvas.clear_background_color = THEME.background;
    this.canvas.render_canvas_border = false;
    this.canvas.show_info = false;
    this.canvas.render_shadows = false;
    // Keep full detail down to 45 % zoom; below it litegraph draws simplified nodes (fast at 500 nodes).
    this.canvas.low_quality_zoom_threshold = 0.45;
    this.canvas.links_render_mode = LiteGraph.SPLINE_LINK;
    this.hooks = {
      onWidgetChange: () => this.scheduleCheck(),
      uploadImage: (n, w) => events.uploadImage(n, w),
      inputImageUrl: (name) => events.inputImageUrl(name),
    };
    this.dom = new DomWidgets(this.canvas, () => this.scheduleCheck(600));
    registerRerouteClass();
    registerNoteClass(this.hooks);
    this.installCanvasHooks();
    this.installMenus();
    installModeRendering(this.canvas);
  }

  // ------------------------------------------------------------------ definitions

  /** Register (or refresh) node classes; existing nodes get fresh combo lists. */
  setDefs(defs: NodeDefs): void {
    this.defs = defs;
    for (const def of defs.values()) {
      registerNodeClass(def, this.hooks);
      for (const t of [...def.inputs.map((i) => i.type), ...def.outputs.map((o) => o.type)]) ensureTypeColor(this.canvas, t);
    }
    for (const node of this.nodes()) {
      const def = defs.get(node.type);
      if (!def) continue;
      node.lgDef = def;
      for (const w of (node.widgets ?? []) as LgWidget[]) {
        const input = def.inputs.find((i) => i.name === w.name && !w.lgControlFor);
        if (input?.widget === "COMBO" && w.type === "combo") {
          w.options.values = input.choices.map(String);
          w.lgInput = input;
        }
      }
    }
    this.canvas.setDirty(true, true);
  }

  getDefs(): NodeDefs {
    return this.defs;
  }

  nodes(): LgNode[] {
    return this.graph._nodes as unknown as LgNode[];
  }

  nodeById(id: number | string): LgNode | undefined {
    return (this.graph.getNodeById(Number(id)) ?? undefined) as LgNode | undefined;
  }

  // ------------------------------------------------------------------ document <-> graph

  /** Replace the canvas content with a document; `resetHistory` starts a fresh undo log. */
  load(doc: WorkflowDoc, resetHistory = true): void {
    this.suspended++;
    try {
      this.graph.clear();
      this.dom.clear();
      this.docExtra = doc.extra ? cloneDoc(doc.extra) : undefined;
      const incoming = new Map<number, string[]>();
      for (const l of doc.links) incoming.set(l.to[0], [...(incoming.get(l.to[0]) ?? []), l.to[1]]);
      for (const nd of doc.nodes) this.graph.add(this.createNode(nd, incoming.get(nd.id) ?? []), true);
      for (const l of doc.links) this.connect(l);
      this.graph.state.lastLinkId = doc.links.reduce((m, l) => Math.max(m, l.id), 0);
      for (const g of doc.groups) this.graph.add(this.createGroup(g));
      this.graph.updateExecutionOrder();
      if (doc.view) {
        this.canvas.ds.scale = doc.view.scale;
        this.canvas.ds.offset[0] = doc.view.offset[0];
        this.canvas.ds.offset[1] = doc.view.offset[1];
      }
      this.baseline = this.toDoc();
      this.lastView = this.viewKey();
      if (resetHistory) this.log.clear();
      this.canvas.setDirty(true, true);
    } finally {
      this.suspended--;
    }
  }

  private createNode(nd: NodeDoc, linkedInputs: string[]): LgNode {
    const def = this.defs.get(nd.type);
    if (!def && nd.type !== REROUTE_TYPE && nd.type !== NOTE_TYPE) registerPlaceholderClass(nd.type);
    const node = LiteGraph.createNode(nd.type) as unknown as LgNode;
    node.id = nd.id;
    if (!def && nd.type !== REROUTE_TYPE && nd.type !== NOTE_TYPE) buildPlaceholder(node, cloneDoc(nd), linkedInputs);
    this.applyNodeFields(node, nd);
    return node;
  }

  /** Set everything a document node says about an existing graph node (not its links). */
  private applyNodeFields(node: LgNode, nd: NodeDoc): void {
    node.pos = [nd.pos[0], nd.pos[1]];
    const def = this.defs.get(nd.type);
    node.title = nd.title ?? def?.displayName ?? (nd.type === NOTE_TYPE ? "Note" : nd.type);
    node.mode = MODE_TO_LG[nd.mode ?? "always"] as never;
    node.color = nd.color ?? (node.lgPlaceholder ? "#5b2b2b" : undefined);
    node.bgcolor = nd.bgcolor ?? (node.lgPlaceholder ? "#2a1f22" : undefined);
    if (nd.type === NOTE_TYPE) {
      node.color = nd.color ?? "#5f5426";
      node.bgcolor = nd.bgcolor ?? "#3e381e";
    }
    node.flags.collapsed = nd.collapsed === true ? true : undefined;
    if (node.lgPlaceholder) {
      node.lgPlaceholder = cloneDoc(nd);
    } else {
      const extra: Record<string, unknown> = {};
      const widgets = valueWidgets(node);
      for (const [name, value] of Object.entries(nd.inputs)) {
        const w = widgets.find((x) => x.name === name);
        if (w) w.value = value as never;
        else extra[name] = value;
      }
      node.lgExtraInputs = Object.keys(extra).length ? extra : undefined;
      for (const w of (node.widgets ?? []) as LgWidget[]) {
        if (!w.lgControlFor) continue;
        const c = nd.controls?.[w.lgControlFor];
        if (isSeedControl(c)) w.value = c;
      }
    }
    node.lgExtra = nd.extra ? cloneDoc(nd.extra) : undefined;
    if (nd.size) node.setSize([nd.size[0], nd.size[1]]);
    else {
      const s = node.computeSize();
      node.setSize([Math.max(s[0], node.size[0]), s[1]]);
    }
  }

  private connect(l: LinkDoc): boolean {
    const from = this.nodeById(l.from[0]);
    const to = this.nodeById(l.to[0]);
    if (!from || !to) return false;
    let slot = to.findInputSlot(l.to[1]);
    if (slot < 0 && to.lgPlaceholder) {
      to.addInput(l.to[1], "*");
      slot = to.inputs.length - 1;
    }
    if (slot < 0 || !from.outputs[l.from[1]]) return false;
    this.graph.state.lastLinkId = l.id - 1;
    const link = from.connect(l.from[1], to as LGraphNode, slot);
    return !!link;
  }

  private createGroup(g: GroupDoc): LGraphGroup {
    const group = new LGraphGroup(g.title);
    group.pos = [g.bounding[0], g.bounding[1]];
    group.size = [g.bounding[2], g.bounding[3]];
    if (g.color) group.color = g.color;
    return group;
  }

  /** Read the canvas back as a document. */
  toDoc(): WorkflowDoc {
    const doc = emptyWorkflow();
    const nodes = [...this.nodes()].sort((a, b) => Number(a.id) - Number(b.id));
    for (const node of nodes) doc.nodes.push(this.nodeToDoc(node));
    const byId = new Map(nodes.map((n) => [Number(n.id), n] as const));
    for (const link of this.graph.links.values()) {
      const target = byId.get(Number(link.target_id));
      const input = target?.inputs[link.target_slot];
      if (!target || !input || !byId.has(Number(link.origin_id))) continue;
      doc.links.push({
        id: Number(link.id),
        from: [Number(link.origin_id), link.origin_slot],
        to: [Number(link.target_id), input.name],
        type: String(link.type ?? "*"),
      });
    }
    doc.links.sort((a, b) => a.id - b.id);
    for (const g of this.graph._groups) {
      const b = g._bounding;
      const gd: GroupDoc = { title: g.title, bounding: [round(b[0]), round(b[1]), round(b[2]), round(b[3])] };
      if (g.color) gd.color = g.color;
      doc.groups.push(gd);
    }
    if (this.docExtra) doc.extra = cloneDoc(this.docExtra);
    doc.view = {
      scale: Math.round(this.canvas.ds.scale * 1000) / 1000,
      offset: [round(this.canvas.ds.offset[0]), round(this.canvas.ds.offset[1])],
    };
    return doc;
  }

  private nodeToDoc(node: LgNode): NodeDoc {
    const pos: [number, number] = [round(node.pos[0]), round(node.pos[1])];
    const size: [number, number] = [round(node.size[0]), round(node.size[1])];
    const mode = modeFromLg(node.mode);
    if (node.lgPlaceholder) {
      const nd = cloneDoc(node.lgPlaceholder);
      nd.pos = pos;
      nd.size = size;
      setOptional(nd, "title", node.title !== nd.type ? node.title : undefined);
      setOptional(nd, "mode", mode);
      setOptional(nd, "color", node.color !== "#5b2b2b" ? node.color : undefined);
      setOptional(nd, "bgcolor", node.bgcolor !== "#2a1f22" ? node.bgcolor : undefined);
      setOptional(nd, "collapsed", node.flags.collapsed ? true : undefined);
      return nd;
    }
    const def = node.lgDef;
    const nd: NodeDoc = { id: Number(node.id), type: node.type, pos, size, inputs: {} };
    const defaultTitle = def?.displayName ?? (node.type === NOTE_TYPE ? "Note" : node.type === REROUTE_TYPE ? "Reroute" : node.type);
    if (node.title !== defaultTitle) nd.title = node.title;
    if (mode) nd.mode = mode;
    const isNote = node.type === NOTE_TYPE;
    if (node.color && !(isNote && node.color === "#5f5426")) nd.color = node.color;
    if (node.bgcolor && !(isNote && node.bgcolor === "#3e381e")) nd.bgcolor = node.bgcolor;
    if (node.flags.collapsed) nd.collapsed = true;
    for (const w of valueWidgets(node)) nd.inputs[w.name] = w.value as unknown;
    if (node.lgExtraInputs) for (const [k, v] of Object.entries(node.lgExtraInputs)) if (!(k in nd.inputs)) nd.inputs[k] = v;
    const controls: Record<string, string> = {};
    for (const w of (node.widgets ?? []) as LgWidget[]) if (w.lgControlFor) controls[w.lgControlFor] = String(w.value);
    if (Object.keys(controls).length) nd.controls = controls as NodeDoc["controls"];
    if (def) {
      nd.slots = {
        inputs: def.inputs.filter((i) => i.widget === null).map((i) => ({ name: i.name, type: i.type })),
        outputs: def.outputs.map((o) => ({ name: o.name, type: o.type })),
      };
    }
    if (node.lgExtra) nd.extra = cloneDoc(node.lgExtra);
    return nd;
  }

  // ------------------------------------------------------------------ change tracking

  /** Look for user edits soon (after the current event settles). */
  scheduleCheck(delayMs = 0): void {
    if (this.checkScheduled) return;
    this.checkScheduled = true;
    const run = () => {
      this.checkScheduled = false;
      this.checkForChanges();
    };
    if (delayMs > 0) setTimeout(run, delayMs);
    else requestAnimationFrame(run);
  }

  /** Compare the canvas with the last recorded document; record the difference as a command. */
  checkForChanges(): Op[] {
    if (this.suspended) return [];
    if (this.canvas.pointer_is_down || this.canvas.isDragging) {
      this.scheduleCheck(100);
      return [];
    }
    const now = this.toDoc();
    const ops = diffDocs(this.baseline, now);
    const viewChanged = this.viewKey() !== this.lastView;
    this.baseline = now;
    if (ops.length) {
      this.log.record(ops);
      this.events.onChange(ops);
    } else if (viewChanged) {
      this.lastView = this.viewKey();
      this.events.onViewChange();
    }
    return ops;
  }

  private viewKey(): string {
    return stableStringify([this.canvas.ds.scale, this.canvas.ds.offset[0], this.canvas.ds.offset[1]]);
  }

  /** Accept the current canvas as the baseline without recording an undo step (run-time resizes). */
  acceptSilently(): void {
    if (this.suspended) return;
    const pending = diffDocs(this.baseline, this.toDoc());
    // Only layout changes made by the run may be absorbed; real edits are recorded first.
    if (pending.some((o) => o.op !== "changeNode" || !sameExceptSize(o.before, o.after))) {
      this.scheduleCheck();
      return;
    }
    this.baseline = this.toDoc();
  }

  /** Apply a programmatic edit to the document as one undoable command. */
  applyEdit(ops: Op[]): void {
    this.checkForChanges();
    this.applyToCanvas(ops);
    this.log.record(ops);
    this.events.onChange(ops);
  }

  undo(): boolean {
    this.checkForChanges();
    const ops = this.log.undo();
    if (!ops) return false;
    this.applyToCanvas(ops);
    this.events.onChange(ops);
    return true;
  }

  redo(): boolean {
    this.checkForChanges();
    const ops = this.log.redo();
    if (!ops) return false;
    this.applyToCanvas(ops);
    this.events.onChange(ops);
    return true;
  }

  /** Apply operations to the canvas: in place for value/layout changes, else rebuild. */
  private applyToCanvas(ops: Op[]): void {
    const target = applyOps(this.baseline, ops);
    const inPlace = ops.every((o) => o.op === "changeNode" && sameStructure(o.before, o.after));
    this.suspended++;
    try {
      if (inPlace) {
        for (const o of ops) {
          if (o.op !== "changeNode") continue;
          const node = this.nodeById(o.after.id);
          if (node) this.applyNodeFields(node, o.after);
        }
      } else {
        const view = this.toDoc().view;
        this.load({ ...target, view }, false);
      }
      this.baseline = this.toDoc();
      this.canvas.setDirty(true, true);
    } finally {
      this.suspended--;
    }
  }

  // ------------------------------------------------------------------ editing helpers

  /** Add a node of a known type at a graph position; returns it. */
  addNode(type: string, pos: [number, number]): LgNode | null {
    const node = LiteGraph.createNode(type) as unknown as LgNode | null;
    if (!node) return null;
    node.pos = [pos[0], pos[1]];
    this.graph.add(node as LGraphNode);
    this.canvas.selectNode(node as LGraphNode);
    this.scheduleCheck();
    return node;
  }

  /** Connect a dropped link to a freshly created node's first compatible slot. */
  connectDropped(ctx: LinkDropContext, node: LgNode): boolean {
    if (ctx.fromOutput) {
      const idx = node.inputs.findIndex(
        (i) => LiteGraph.isValidConnection(ctx.type, i.type) && !(i as { widget?: unknown }).widget,
      );
      const slot = idx >= 0 ? idx : node.inputs.findIndex((i) => LiteGraph.isValidConnection(ctx.type, i.type));
      if (slot < 0) return false;
      return !!ctx.node.connect(ctx.slot, node as LGraphNode, slot);
    }
    const out = node.outputs.findIndex((o) => LiteGraph.isValidConnection(o.type, ctx.type));
    if (out < 0) return false;
    return !!node.connect(out, ctx.node as LGraphNode, ctx.slot);
  }

  setMode(nodes: LgNode[], mode: NodeMode): void {
    const all = nodes.every((n) => modeFromLg(n.mode) === mode);
    for (const n of nodes) n.mode = MODE_TO_LG[all ? "always" : mode] as never;
    this.canvas.setDirty(true, true);
    this.scheduleCheck();
  }

  selectedNodes(): LgNode[] {
    return Object.values(this.canvas.selected_nodes) as unknown as LgNode[];
  }

  /** Wrap the selected nodes in a new group. */
  groupSelected(title = "Group"): void {
    const nodes = this.selectedNodes();
    if (!nodes.length) return;
    const group = new LGraphGroup(title);
    this.graph.add(group);
    group.resizeTo(nodes as LGraphNode[], 10);
    this.scheduleCheck();
  }

  /** Zoom and pan so every node is visible (the "." shortcut, and new documents). */
  fitView(): void {
    const nodes = this.nodes();
    const r = (this.element.parentElement ?? this.element).getBoundingClientRect();
    if (!nodes.length || r.width < 10 || r.height < 10) return;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of nodes) {
      x0 = Math.min(x0, n.pos[0]);
      y0 = Math.min(y0, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT);
      x1 = Math.max(x1, n.pos[0] + n.size[0]);
      y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    const margin = 40;
    const scale = Math.min(1.25, Math.max(0.1, Math.min((r.width - margin * 2) / (x1 - x0), (r.height - margin * 2) / (y1 - y0))));
    const ds = this.canvas.ds;
    ds.scale = scale;
    ds.offset[0] = (r.width / scale - (x1 - x0)) / 2 - x0;
    ds.offset[1] = (r.height / scale - (y1 - y0)) / 2 - y0;
    this.canvas.setDirty(true, true);
    this.scheduleCheck();
  }

  /** Graph coordinates of the centre of the visible canvas. */
  viewCenter(): [number, number] {
    const r = (this.element.parentElement ?? this.element).getBoundingClientRect();
    const p = this.canvas.ds.convertCanvasToOffset([r.width / 2, r.height / 2]);
    return [p[0], p[1]];
  }

  // ------------------------------------------------------------------ run-state drawing

  clearRunState(): void {
    for (const n of this.nodes()) {
      n.lgRuntime.running = false;
      n.lgRuntime.progress = undefined;
      n.lgRuntime.cached = false;
      n.lgRuntime.report = undefined;
      n.lgRuntime.error = undefined;
      n.lgRuntime.inputErrors.clear();
    }
    this.canvas.setDirty(true, true);
  }

  redraw(): void {
    this.canvas.setDirty(true, true);
  }

  /** Give a node room to show images below its widgets. */
  ensureImageSpace(node: LgNode, minHeight = 260): void {
    const widgetsBottom = this.widgetsBottom(node);
    if (node.size[1] < widgetsBottom + minHeight) {
      node.setSize([Math.max(node.size[0], 280), widgetsBottom + minHeight]);
      this.acceptSilently();
    }
  }

  private widgetsBottom(node: LgNode): number {
    let bottom = 0;
    for (const w of (node.widgets ?? []) as LgWidget[]) {
      bottom = Math.max(bottom, (w.y ?? 0) + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT + 4));
    }
    if (!bottom) bottom = Math.max(node.inputs.length, node.outputs.length) * LiteGraph.NODE_SLOT_HEIGHT + 8;
    return bottom;
  }

  /** Our node and canvas context menus (litegraph's own offer things our format does not keep). */
  private installMenus(): void {
    const canvas = this.canvas;
    type Item = { content: string; callback?: (...args: never[]) => void; has_submenu?: boolean; disabled?: boolean } | null;
    const after = (fn: () => void) => () => {
      fn();
      canvas.setDirty(true, true);
      this.scheduleCheck();
    };
    canvas.getNodeMenuOptions = ((node: LgNode) => {
      const targets = node.is_selected ? this.selectedNodes() : [node];
      const items: Item[] = [
        { content: "Rename…", callback: after(() => this.events.renameNode(node)) },
        { content: "Colors", has_submenu: true, callback: LGraphCanvas.onMenuNodeColors as never },
        null,
        { content: modeFromLg(node.mode) === "bypass" ? "Remove bypass (Ctrl+B)" : "Bypass (Ctrl+B)", callback: after(() => this.setMode(targets, "bypass")) },
        { content: modeFromLg(node.mode) === "mute" ? "Unmute (Ctrl+M)" : "Mute (Ctrl+M)", callback: after(() => this.setMode(targets, "mute")) },
        { content: node.flags.collapsed ? "Expand" : "Collapse", callback: after(() => node.collapse(true)) },
        { content: node.pinned ? "Unpin" : "Pin", callback: after(() => node.pin()) },
        null,
        { content: "Group selected (Ctrl+G)", callback: after(() => this.groupSelected()) },
        { content: "Clone", callback: after(() => {
          const clone = node.clone() as unknown as LgNode | null;
          if (!clone) return;
          clone.pos = [node.pos[0] + 30, node.pos[1] + 30];
          this.graph.add(clone as LGraphNode);
        }) },
        null,
        { content: "Delete", callback: after(() => {
          for (const n of targets) this.graph.remove(n as LGraphNode);
        }) },
      ];
      return items;
    }) as never;
    canvas.getCanvasMenuOptions = (() => {
      const mouse = [canvas.graph_mouse[0], canvas.graph_mouse[1]] as [number, number];
      const screen = [canvas.last_mouse[0], canvas.last_mouse[1]] as [number, number];
      const rect = this.element.getBoundingClientRect();
      const items: Item[] = [
        { content: "Add node…", callback: () => this.events.searchAt(mouse, [rect.left + screen[0], rect.top + screen[1]]) },
        { content: "Add group", callback: after(() => {
          const g = new LGraphGroup("Group");
          g.pos = [mouse[0], mouse[1]];
          this.graph.add(g);
        }) },
        { content: "Group selected (Ctrl+G)", disabled: this.selectedNodes().length === 0, callback: after(() => this.groupSelected()) },
        null,
        { content: "Paste (Ctrl+V)", callback: after(() => canvas.pasteFromClipboard({ position: mouse })) },
        { content: "Fit view (.)", callback: () => this.fitView() },
      ];
      return items;
    }) as never;
  }

  private installCanvasHooks(): void {
    const canvas = this.canvas;
    const editor = this;
    const el = this.element;
    const check = () => this.scheduleCheck();
    // litegraph captures the pointer while dragging; listen on the document in the capture phase.
    document.addEventListener("pointerup", check, true);
    // The run badge's explanation, as the canvas's tooltip while the pointer is over its node.
    el.addEventListener("pointermove", () => {
      const [x, y] = canvas.graph_mouse;
      const node = this.graph.getNodeOnPos(x, y) as LgNode | null;
      const report = node?.lgRuntime?.report;
      const tip = report ? `${node!.title}: ${badgeTooltip(report)}` : "";
      if (el.title !== tip) el.title = tip;
    });
    el.addEventListener("wheel", () => this.scheduleCheck(300), { passive: true });
    document.addEventListener("keyup", (e) => {
      if (e.target === document.body || e.target === el) check();
    });
    // Litegraph's own context menus are DOM elements outside the canvas.
    document.addEventListener("click", (e) => {
      if ((e.target as HTMLElement | null)?.closest?.(".litecontextmenu, .graphdialog")) setTimeout(check, 0);
    }, true);
    document.addEventListener("keydown", (e) => {
      if ((e.target as HTMLElement | null)?.closest?.(".graphdialog") && e.key === "Enter") setTimeout(check, 0);
    }, true);

    el.addEventListener("litegraph:canvas", (ev: Event) => {
      const detail = (ev as CustomEvent).detail as { subType: string; originalEvent?: MouseEvent };
      if (detail.subType === "node-double-click" && detail.originalEvent) {
        const node = (detail as unknown as { node: LgNode }).node;
        const e = detail.originalEvent as MouseEvent & { canvasY: number };
        if (node && e.canvasY < node.pos[1]) this.events.renameNode(node);
      }
      if (detail.subType === "empty-double-click" && detail.originalEvent) {
        const e = detail.originalEvent as MouseEvent & { canvasX: number; canvasY: number };
        this.events.onSearchRequest([e.canvasX, e.canvasY], [e.clientX, e.clientY], null);
      }
    });
    canvas.linkConnector.events.addEventListener("dropped-on-canvas", (ev: Event) => {
      const e = (ev as CustomEvent).detail as MouseEvent & { canvasX: number; canvasY: number };
      const rl = canvas.linkConnector.renderLinks[0] as unknown as
        | { node: LgNode; fromSlotIndex: number; fromSlot: { type: unknown } }
        | undefined;
      if (!rl || !("inputs" in rl.node)) return;
      const fromOutput = canvas.linkConnector.state.connectingTo === "input";
      const ctx: LinkDropContext = {
        node: rl.node,
        slot: rl.fromSlotIndex,
        fromOutput,
        type: String(rl.fromSlot.type ?? "*"),
      };
      // Let litegraph finish its drop handling before opening the dialog.
      setTimeout(() => this.events.onSearchRequest([e.canvasX, e.canvasY], [e.clientX, e.clientY], ctx), 0);
    });

    const proto = LiteGraph.LGraphNode.prototype as unknown as {
      onDrawForeground?: (this: LgNode, ctx: CanvasRenderingContext2D) => void;
      onDrawBackground?: (this: LgNode, ctx: CanvasRenderingContext2D) => void;
    };
    proto.onDrawForeground = function (this: LgNode, ctx: CanvasRenderingContext2D) {
      drawRunState(this, ctx, canvas.low_quality);
    };
    proto.onDrawBackground = function (this: LgNode, ctx: CanvasRenderingContext2D) {
      if (!this.flags.collapsed) drawImages(this, ctx, editor.widgetsBottom(this));
    };
    const prevForeground = canvas.onDrawForeground;
    canvas.onDrawForeground = (ctx, area) => {
      prevForeground?.call(canvas, ctx, area);
      this.dom.sync(this.nodes());
    };
  }
}

function setOptional<T extends object, K extends keyof T>(obj: T, key: K, value: T[K] | undefined): void {
  if (value === undefined) delete obj[key];
  else obj[key] = value;
}

function sameExceptSize(a: NodeDoc, b: NodeDoc): boolean {
  return stableStringify({ ...a, size: undefined }) === stableStringify({ ...b, size: undefined });
}

/** True when two versions of a node differ only in values and layout (same sockets). */
function sameStructure(a: NodeDoc, b: NodeDoc): boolean {
  return a.type === b.type && stableStringify(a.slots) === stableStringify(b.slots) && !a.type.includes(REROUTE_TYPE);
}

function roundRect(ctx: CanvasRenderingContext2D, x: number, y: number, w: number, h: number, r: number) {
  ctx.beginPath();
  ctx.roundRect(x, y, w, h, r);
}

/** Progress bar, running/error outlines, cached badge and validation marks. */
function drawRunState(node: LgNode, ctx: CanvasRenderingContext2D, lowQuality: boolean): void {
  const rt = node.lgRuntime;
  if (!rt) return;
  const titleH = LiteGraph.NODE_TITLE_HEIGHT;
  const [w, h] = node.flags.collapsed ? [node._collapsed_width ?? 120, 0] : node.size;
  ctx.save();
  if (rt.running || rt.error || rt.inputErrors.size) {
    ctx.lineWidth = rt.running ? 3 : 2.5;
    ctx.strokeStyle = rt.running && !rt.error ? THEME.running : THEME.error;
    roundRect(ctx, -4, -titleH - 4, w + 8, h + titleH + 8, 10);
    ctx.stroke();
  }
  if (rt.progress !== undefined && rt.progress > 0 && !node.flags.collapsed) {
    ctx.fillStyle = "rgba(0,0,0,0.35)";
    ctx.fillRect(0, -3, w, 3);
    ctx.fillStyle = THEME.running;
    ctx.fillRect(0, -3, w * Math.min(1, rt.progress), 3);
  }
  const badge = rt.report ? badgeText(rt.report) : rt.cached ? "cached" : null;
  if (badge && !lowQuality) {
    const ran = rt.report?.state === "ran";
    ctx.font = "11px sans-serif";
    const tw = ctx.measureText(badge).width + 12;
    ctx.fillStyle = ran ? "rgba(90,160,255,0.28)" : "rgba(138,145,160,0.25)";
    roundRect(ctx, w - tw - 8, -titleH + 7, tw, 16, 8);
    ctx.fill();
    ctx.fillStyle = ran ? "#cfe2ff" : "#c9ced8";
    ctx.fillText(badge, w - tw - 2, -titleH + 19);
  }
  if (!lowQuality && !node.flags.collapsed) {
    // The messages themselves are listed in the error box below the node.
    for (const name of rt.inputErrors.keys()) {
      const slotIdx = node.inputs.findIndex((i) => i.name === name);
      const widget = (node.widgets ?? []).find((x) => x.name === name);
      let y: number | undefined;
      if (widget && widget.y !== undefined) y = widget.y + LiteGraph.NODE_WIDGET_HEIGHT / 2;
      else if (slotIdx >= 0) y = node.getInputPos(slotIdx)[1] - node.pos[1];
      if (y === undefined) continue;
      ctx.fillStyle = THEME.error;
      ctx.beginPath();
      ctx.arc(4, y, 5, 0, Math.PI * 2);
      ctx.fill();
      if (widget) {
        ctx.strokeStyle = THEME.error;
        ctx.lineWidth = 1.5;
        roundRect(ctx, 13, widget.y - 1, w - 26, LiteGraph.NODE_WIDGET_HEIGHT + 2, 6);
        ctx.stroke();
      }
    }
    if (rt.error) {
      ctx.font = "12px sans-serif";
      const lines = wrapText(ctx, rt.error, Math.max(w, 240) - 16).slice(0, 4);
      const boxH = lines.length * 16 + 10;
      ctx.fillStyle = "rgba(80,20,24,0.95)";
      roundRect(ctx, 0, h + 8, Math.max(w, 240), boxH, 6);
      ctx.fill();
      ctx.fillStyle = "#ffd7d7";
      lines.forEach((line, i) => ctx.fillText(line, 8, h + 24 + i * 16));
    }
  }
  ctx.restore();
}

function wrapText(ctx: CanvasRenderingContext2D, text: string, width: number): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let line = "";
  for (const word of words) {
    const test = line ? `${line} ${word}` : word;
    if (ctx.measureText(test).width > width && line) {
      lines.push(line);
      line = word;
    } else line = test;
  }
  if (line) lines.push(line);
  return lines;
}

/** Output images (or the live sampler preview) fitted into the space below the widgets. */
function drawImages(node: LgNode, ctx: CanvasRenderingContext2D, top: number): void {
  const rt = node.lgRuntime;
  if (!rt) return;
  const imgs = rt.preview ? [rt.preview] : rt.images;
  const ready = imgs.filter((i) => i.complete && i.naturalWidth > 0);
  if (!ready.length) return;
  const [w, h] = node.size;
  const areaY = top + 6;
  const areaH = h - areaY - 6;
  if (areaH < 20) return;
  const cols = Math.ceil(Math.sqrt(ready.length));
  const rows = Math.ceil(ready.length / cols);
  const cellW = (w - 12) / cols;
  const cellH = areaH / rows;
  ready.forEach((img, i) => {
    const scale = Math.min(cellW / img.naturalWidth, cellH / img.naturalHeight);
    const dw = img.naturalWidth * scale;
    const dh = img.naturalHeight * scale;
    const cx = 6 + (i % cols) * cellW + (cellW - dw) / 2;
    const cy = areaY + Math.floor(i / cols) * cellH + (cellH - dh) / 2;
    ctx.drawImage(img, cx, cy, dw, dh);
  });
}
