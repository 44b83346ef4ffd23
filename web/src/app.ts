/**
 * The editor application: wires the canvas adapter, the server client, tabs, panels, queueing,
 * live run feedback, file import/export and keyboard shortcuts together.
 */
import { ApiClient, ApiError, type HistoryEntry, type ImageRef, type NodeErrors, type QueueItem } from "./api/client";
import { type EditorEvents, GraphEditor, type LinkDropContext } from "./editor/graph";
import type { LgNode, LgWidget } from "./editor/nodes";
import { importApiPrompt, importComfyUi, isApiPrompt, isComfyUiWorkflow } from "./model/comfy";
import { toComfyUi } from "./model/comfyExport";
import type { Op } from "./model/commands";
import { defaultWorkflow } from "./model/defaultWorkflow";
import { type NodeDef, type NodeDefs, parseObjectInfo } from "./model/nodedefs";
import { fromFile, isWorkflowFile, toFile } from "./model/fileFormat";
import { readPngText } from "./model/png";
import { workflowToPrompt } from "./model/prompt";
import { seedChanges } from "./model/seed";
import { emptyWorkflow, isOurWorkflow, validateWorkflow, type WorkflowDoc } from "./model/workflow";
import { confirmDialog, h, promptText, toast } from "./ui/dom";
import { LibraryPanel } from "./ui/library";
import { QueuePanel } from "./ui/queue";
import { SearchDialog } from "./ui/search";
import { displayName, type Tab, Workspace } from "./ui/workspace";
import { WorkflowsPanel } from "./ui/workflows";

type PanelName = "library" | "workflows" | "queue";

const svg = (path: string) =>
  `<svg viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">${path}</svg>`;
const ICONS = {
  library: svg('<rect x="3" y="3" width="7" height="7" rx="1.5"/><rect x="14" y="3" width="7" height="7" rx="1.5"/><rect x="3" y="14" width="7" height="7" rx="1.5"/><path d="M17.5 14v7M14 17.5h7"/>'),
  workflows: svg('<path d="M4 4h10l6 6v10H4z"/><path d="M14 4v6h6M8 14h8M8 17h5"/>'),
  queue: svg('<path d="M4 6h16M4 12h16M4 18h10"/><path d="M17 16l3 2-3 2z" fill="currentColor"/>'),
};

/** Editor-only node types offered next to the server's (never sent to it). */
const EDITOR_NODES: NodeDef[] = [
  {
    name: "Reroute", displayName: "Reroute", category: "utils", pythonModule: "", outputNode: false, deprecated: false, experimental: false,
    description: "Passes one link through a point you place, to tidy long wires.",
    inputs: [{ name: "", type: "*", widget: null, optional: false, default: undefined, choices: [], multiline: false, controlAfterGenerate: false, imageUpload: false, tooltip: "" }],
    outputs: [{ name: "", type: "*", isList: false, tooltip: "" }],
  },
  {
    name: "Note", displayName: "Note", category: "utils", pythonModule: "", outputNode: false, deprecated: false, experimental: false,
    description: "A text note on the canvas; not part of the run.", inputs: [], outputs: [],
  },
];

/** Where a document came from, for messages. */
export interface LoadedDoc {
  doc: WorkflowDoc;
  warnings: string[];
  name: string;
}

export class App {
  readonly api = new ApiClient();
  readonly workspace = new Workspace(this.api, (doc) => JSON.stringify(toFile(doc, this.defs), null, 2));
  editor!: GraphEditor;
  defs: NodeDefs = new Map();
  private search = new SearchDialog(() => this.libraryDefs());
  private library!: LibraryPanel;
  private workflows!: WorkflowsPanel;
  queuePanel!: QueuePanel;
  private tabsEl!: HTMLElement;
  private panelHost!: HTMLElement;
  private statusEl!: HTMLElement;
  private queueCountEl!: HTMLElement;
  private activePanel: PanelName | null = "queue";
  /** prompt id -> tab id, for routing run events to the workflow that queued them. */
  readonly promptTabs = new Map<string, string>();
  runningPrompt: string | null = null;
  private runningNode: string | null = null;
  ready = false;

  async start(root: HTMLElement): Promise<void> {
    this.buildLayout(root);
    this.installShortcuts();
    this.installDragDrop(root);
    this.api.addEventListener("message", (e) => this.onServerMessage((e as CustomEvent).detail));
    this.api.addEventListener("preview", (e) => this.onPreview((e as CustomEvent).detail));
    this.api.addEventListener("connection", (e) => this.setConnection((e as CustomEvent).detail as boolean));
    this.api.connect();
    this.renderPanel();
    await this.loadDefs();
    const restored = await this.workspace.restore();
    if (!restored) await this.newWorkflow(defaultWorkflow(this.defs), "Default");
    else this.showTab(this.workspace.active!);
    void this.queuePanel.refresh();
    // Model lists change on disk: re-read definitions when the user comes back to the tab.
    let lastRefresh = Date.now();
    window.addEventListener("focus", () => {
      if (Date.now() - lastRefresh < 5000) return;
      lastRefresh = Date.now();
      void this.loadDefs();
    });
    window.addEventListener("beforeunload", () => {
      this.syncActive();
      this.workspace.writeSessionNow();
    });
    this.ready = true;
    document.body.dataset.ready = "true";
  }

  // ------------------------------------------------------------------ layout

  private buildLayout(root: HTMLElement): void {
    const canvas = h("canvas", { id: "graph-canvas", tabindex: "0" });
    const canvasWrap = h("div", { class: "canvas-wrap" }, canvas);
    this.tabsEl = h("div", { class: "tabs", role: "tablist" });
    this.queueCountEl = h("span", { class: "queue-count" }, "0");
    const queueBtn = h("button", { class: "btn btn-primary queue-btn", id: "queue-button", title: "Queue (Ctrl+Enter)" }, "▶ Queue");
    queueBtn.addEventListener("click", () => void this.queuePrompt(false));
    const stopBtn = h("button", { class: "btn", id: "interrupt-button", title: "Stop the running job (Ctrl+Alt+Enter)" }, "■");
    stopBtn.addEventListener("click", () => void this.api.interrupt().catch(() => undefined));
    const undoBtn = h("button", { class: "icon-btn", id: "undo-button", title: "Undo (Ctrl+Z)" }, "↶");
    undoBtn.addEventListener("click", () => this.editor.undo());
    const redoBtn = h("button", { class: "icon-btn", id: "redo-button", title: "Redo (Ctrl+Y)" }, "↷");
    redoBtn.addEventListener("click", () => this.editor.redo());
    const menu = this.buildMenu();
    const newTab = h("button", { class: "icon-btn new-tab", title: "New workflow" }, "+");
    newTab.addEventListener("click", () => void this.newWorkflow(defaultWorkflow(this.defs), "Untitled"));
    const header = h(
      "header",
      { class: "topbar" },
      h("div", { class: "brand" }, h("span", { class: "brand-mark" }, "◆"), "Latentgraph"),
      menu,
      this.tabsEl,
      newTab,
      h("div", { class: "spacer" }),
      undoBtn,
      redoBtn,
      h("div", { class: "queue-group" }, queueBtn, stopBtn, this.queueCountEl),
    );
    const side = h("nav", { class: "sidebar-icons" });
    const panels: Array<[PanelName, string, string]> = [
      ["library", ICONS.library, "Node library (N)"],
      ["workflows", ICONS.workflows, "Workflows (W)"],
      ["queue", ICONS.queue, "Queue (Q)"],
    ];
    for (const [name, icon, title] of panels) {
      const b = h("button", { class: "side-btn", title, "aria-label": title, dataset: { panel: name } });
      b.innerHTML = icon;
      b.addEventListener("click", () => this.togglePanel(name));
      side.append(b);
    }
    this.panelHost = h("aside", { class: "panel-host" });
    this.statusEl = h("span", { class: "status-conn" }, "Connecting…");
    const footer = h("footer", { class: "statusbar" }, this.statusEl, h("span", { class: "status-hint" }, "Double-click the canvas to add a node · Ctrl+Enter to queue · Ctrl+Z / Ctrl+Y"));
    root.append(header, h("main", { class: "workarea" }, side, this.panelHost, canvasWrap), footer);

    const events: EditorEvents = {
      onChange: (ops) => this.onEdit(ops),
      onViewChange: () => {
        const tab = this.workspace.active;
        if (tab) this.workspace.updateView(tab, this.editor.toDoc());
      },
      onSearchRequest: (pos, screen, link) => this.openSearch(pos, screen, link),
      searchAt: (pos, screen) => this.openSearch(pos, screen, null),
      renameNode: (node) => {
        void promptText("Rename node", node.title).then((title) => {
          if (!title) return;
          node.title = title;
          this.editor.redraw();
          this.editor.scheduleCheck();
        });
      },
      uploadImage: (node, widget) => this.pickUpload(node, widget),
      inputImageUrl: (name) => this.api.viewUrl(splitInputName(name)),
    };
    this.editor = new GraphEditor(canvas, events);
    const resize = () => {
      const r = canvasWrap.getBoundingClientRect();
      // One canvas pixel per CSS pixel keeps litegraph's pointer maths exact.
      canvas.width = Math.max(1, Math.floor(r.width));
      canvas.height = Math.max(1, Math.floor(r.height));
      canvas.style.width = `${r.width}px`;
      canvas.style.height = `${r.height}px`;
      this.editor.canvas.resize(canvas.width, canvas.height);
      this.editor.redraw();
    };
    new ResizeObserver(resize).observe(canvasWrap);
    canvas.addEventListener("pointerdown", () => canvas.focus());
    canvas.addEventListener("dragover", (e) => {
      if (e.dataTransfer?.types.includes("application/x-latentgraph-node")) e.preventDefault();
    });
    canvas.addEventListener("drop", (e) => {
      const type = e.dataTransfer?.getData("application/x-latentgraph-node");
      if (!type) return;
      e.preventDefault();
      e.stopPropagation();
      const p = this.editor.canvas.convertEventToCanvasOffset(e);
      this.editor.addNode(type, [p[0], p[1]]);
    });

    this.library = new LibraryPanel(() => this.libraryDefs(), (def) => this.addNodeAtCenter(def));
    this.workflows = new WorkflowsPanel(this.api, {
      open: (path) => void this.openPath(path),
      renamed: (from, to) => {
        const tab = this.workspace.findByPath(from);
        if (tab) {
          tab.path = to;
          this.renderTabs();
          this.workspace.scheduleSession();
        }
      },
      deleted: (path) => {
        const tab = this.workspace.findByPath(path);
        if (tab) {
          tab.dirty = true;
          tab.savedKey = "";
          this.renderTabs();
        }
      },
    });
    this.workflows.onListed = (paths) => {
      this.workspace.knownFiles = new Set(paths);
    };
    this.queuePanel = new QueuePanel(this.api, {
      loadFromHistory: (entry, id) => void this.loadFromHistory(entry, id),
      labelFor: (id, item) => this.labelFor(id, item),
    });
    this.workspace.addEventListener("change", () => this.renderTabs());
  }

  private buildMenu(): HTMLElement {
    const items: Array<[string, () => void, string?]> = [
      ["New workflow", () => void this.newWorkflow(defaultWorkflow(this.defs), "Untitled")],
      ["Blank workflow", () => void this.newWorkflow(emptyWorkflow(), "Untitled")],
      ["Open file…", () => this.openFileDialog(), "Ctrl+O"],
      ["Save", () => void this.saveActive(), "Ctrl+S"],
      ["Save as…", () => void this.saveAs()],
      ["Export workflow (JSON)", () => this.exportWorkflow()],
      ["Export API prompt", () => this.exportApi()],
      ["Export for ComfyUI", () => this.exportComfy()],
      ["Fit view", () => this.editor.fitView(), "."],
      ["Refresh node definitions", () => void this.loadDefs(true), "R"],
      ["Clear canvas", () => void this.clearCanvas()],
    ];
    const list = h("div", { class: "menu-list", role: "menu" });
    for (const [label, fn, key] of items) {
      const b = h("button", { class: "menu-item", role: "menuitem" }, h("span", {}, label), key ? h("kbd", {}, key) : null);
      b.addEventListener("click", () => {
        list.classList.remove("open");
        fn();
      });
      list.append(b);
    }
    const btn = h("button", { class: "btn menu-btn", id: "workflow-menu" }, "Workflow ▾");
    btn.addEventListener("click", (e) => {
      e.stopPropagation();
      list.classList.toggle("open");
    });
    document.addEventListener("click", () => list.classList.remove("open"));
    return h("div", { class: "menu" }, btn, list);
  }

  private togglePanel(name: PanelName): void {
    this.activePanel = this.activePanel === name ? null : name;
    this.renderPanel();
  }

  private renderPanel(): void {
    this.panelHost.replaceChildren();
    document.querySelectorAll(".side-btn").forEach((b) => b.classList.toggle("active", (b as HTMLElement).dataset.panel === this.activePanel));
    this.panelHost.classList.toggle("open", this.activePanel !== null);
    if (this.activePanel === "library") {
      this.library.render();
      this.panelHost.append(this.library.el);
    } else if (this.activePanel === "workflows") {
      this.panelHost.append(this.workflows.el);
      void this.workflows.refresh();
    } else if (this.activePanel === "queue") {
      this.panelHost.append(this.queuePanel.el);
      this.queuePanel.render();
    }
    this.editor?.redraw();
  }

  private setConnection(ok: boolean): void {
    this.statusEl.textContent = ok ? "● Connected" : "● Reconnecting…";
    this.statusEl.classList.toggle("ok", ok);
    if (ok) void this.queuePanel?.refresh();
  }

  // ------------------------------------------------------------------ definitions

  async loadDefs(announce = false): Promise<void> {
    try {
      const info = await this.api.getObjectInfo();
      this.defs = parseObjectInfo(info);
      this.editor.setDefs(this.defs);
      if (announce) toast(`Loaded ${this.defs.size} node types`, "success");
      if (this.activePanel === "library") this.library.render();
    } catch (e) {
      toast("Could not load node definitions", "error", String(e));
    }
  }

  /** Server node types plus the editor's own (reroute, note) for search and the library. */
  libraryDefs(): NodeDefs {
    const all: NodeDefs = new Map(this.defs);
    for (const def of EDITOR_NODES) if (!all.has(def.name)) all.set(def.name, def);
    return all;
  }

  // ------------------------------------------------------------------ tabs

  private renderTabs(): void {
    this.tabsEl.replaceChildren();
    for (const tab of this.workspace.tabs) {
      const close = h("button", { class: "tab-close", title: "Close" }, "×");
      const el = h(
        "div",
        { class: `tab${tab.id === this.workspace.activeId ? " active" : ""}${tab.dirty ? " dirty" : ""}`, role: "tab", title: tab.path, dataset: { path: tab.path } },
        h("span", { class: "tab-name" }, displayName(tab.path)),
        h("span", { class: "tab-dot" }, "●"),
        close,
      );
      el.addEventListener("click", (e) => {
        if ((e.target as HTMLElement).closest(".tab-close")) return;
        this.switchTo(tab);
      });
      el.addEventListener("dblclick", () => void this.renameTab(tab));
      close.addEventListener("click", () => this.closeTab(tab));
      this.tabsEl.append(el);
    }
  }

  /** Store the canvas into the active tab before leaving it. */
  syncActive(): void {
    const tab = this.workspace.active;
    if (!tab || !this.editor) return;
    this.editor.checkForChanges();
    tab.doc = this.editor.toDoc();
  }

  switchTo(tab: Tab): void {
    if (tab.id === this.workspace.activeId) return;
    this.syncActive();
    this.showTab(tab);
  }

  private showTab(tab: Tab): void {
    this.workspace.activeId = tab.id;
    this.editor.log = tab.log;
    this.editor.load(tab.doc, false);
    this.editor.clearRunState();
    for (const [nodeId, images] of Object.entries(tab.outputs)) this.showImages(nodeId, images);
    this.refreshInputPreviews();
    this.workspace.scheduleSession();
    this.renderTabs();
    this.updateUndoButtons();
  }

  async newWorkflow(doc: WorkflowDoc, name: string): Promise<Tab> {
    this.syncActive();
    const path = await this.workspace.uniquePath(name);
    const tab = this.workspace.addTab(doc, path, false);
    this.showTab(tab);
    if (!doc.view && doc.nodes.length) this.editor.fitView();
    return tab;
  }

  private closeTab(tab: Tab): void {
    if (tab.id === this.workspace.activeId) this.syncActive();
    this.workspace.close(tab);
    const next = this.workspace.active;
    if (next) this.showTab(next);
    else void this.newWorkflow(defaultWorkflow(this.defs), "Untitled");
  }

  private async renameTab(tab: Tab): Promise<void> {
    const name = await promptText("Rename workflow", displayName(tab.path));
    if (!name) return;
    if (tab.id === this.workspace.activeId) this.syncActive();
    await this.workspace.rename(tab, name).catch((e) => toast("Rename failed", "error", String(e)));
  }

  async saveActive(): Promise<void> {
    const tab = this.workspace.active;
    if (!tab) return;
    this.syncActive();
    try {
      await this.workspace.save(tab);
      toast(`Saved ${displayName(tab.path)}`, "success");
    } catch (e) {
      toast("Save failed", "error", String(e));
    }
  }

  private async saveAs(): Promise<void> {
    const tab = this.workspace.active;
    if (!tab) return;
    const name = await promptText("Save workflow as", displayName(tab.path));
    if (!name) return;
    this.syncActive();
    const path = await this.workspace.uniquePath(name);
    const copy = this.workspace.addTab(tab.doc, path, false);
    await this.workspace.save(copy).catch((e) => toast("Save failed", "error", String(e)));
    this.showTab(copy);
  }

  private async openPath(path: string): Promise<void> {
    const open = this.workspace.findByPath(path);
    if (open) {
      this.switchTo(open);
      return;
    }
    try {
      const text = await this.api.readUserFile(path);
      const loaded = this.parseWorkflowText(text, displayName(path));
      this.syncActive();
      const saved = isWorkflowFile(JSON.parse(text));
      const tab = this.workspace.addTab(loaded.doc, saved ? path : await this.workspace.uniquePath(displayName(path)), saved);
      this.showTab(tab);
      if (!loaded.doc.view) this.editor.fitView();
      this.reportWarnings(loaded);
    } catch (e) {
      toast(`Could not open ${displayName(path)}`, "error", String(e));
    }
  }

  private async clearCanvas(): Promise<void> {
    if (!(await confirmDialog("Clear canvas", "Remove every node from this workflow? You can undo this.", "Clear"))) return;
    this.editor.checkForChanges();
    this.editor.graph.clear();
    this.editor.scheduleCheck();
  }

  // ------------------------------------------------------------------ editing

  private updateUndoButtons(): void {
    const undo = document.getElementById("undo-button");
    const redo = document.getElementById("redo-button");
    const log = this.editor.log;
    undo?.toggleAttribute("disabled", !log.canUndo);
    redo?.toggleAttribute("disabled", !log.canRedo);
    if (undo) undo.title = log.canUndo ? `Undo ${log.peekUndo()!.label} (Ctrl+Z)` : "Nothing to undo";
    if (redo) redo.title = log.canRedo ? `Redo ${log.peekRedo()!.label} (Ctrl+Y)` : "Nothing to redo";
  }

  private onEdit(ops: Op[]): void {
    this.updateUndoButtons();
    const tab = this.workspace.active;
    if (!tab) return;
    this.workspace.updateDoc(tab, this.editor.toDoc());
    if (ops.some((o) => o.op === "changeNode" || o.op === "addNode")) this.refreshInputPreviews();
  }

  private openSearch(pos: [number, number], screen: [number, number], link: LinkDropContext | null): void {
    const filter = link ? (link.fromOutput ? { inputType: link.type } : { outputType: link.type }) : {};
    this.search.open({
      screen,
      filter,
      filterLabel: link ? `${link.fromOutput ? "Takes" : "Gives"} ${link.type}` : undefined,
      onPick: (def) => {
        const node = this.editor.addNode(def.name, pos);
        if (node && link) {
          if (!link.fromOutput) node.pos = [pos[0] - node.size[0], pos[1]];
          this.editor.connectDropped(link, node);
          this.editor.scheduleCheck();
        }
      },
    });
  }

  private addNodeAtCenter(def: NodeDef): void {
    const c = this.editor.viewCenter();
    const jitter = (this.editor.nodes().length % 5) * 20;
    this.editor.addNode(def.name, [c[0] - 120 + jitter, c[1] - 60 + jitter]);
  }

  private pickUpload(node: LgNode, widget: LgWidget): void {
    const input = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
    input.addEventListener("change", () => {
      const file = input.files?.[0];
      if (file) void this.uploadInto(node, widget, file);
    });
    input.click();
  }

  async uploadInto(node: LgNode, widget: LgWidget, file: File): Promise<void> {
    try {
      const ref = await this.api.uploadImage(file, file.name);
      const name = ref.subfolder ? `${ref.subfolder}/${ref.filename}` : ref.filename;
      const values = (widget.options.values as string[] | undefined) ?? [];
      if (!values.includes(name)) widget.options.values = [...values, name].sort();
      widget.value = name;
      widget.callback?.(name);
      this.editor.scheduleCheck();
      this.refreshInputPreviews();
    } catch (e) {
      toast("Upload failed", "error", String(e));
    }
  }

  /** LoadImage-style nodes show the chosen input image. */
  private refreshInputPreviews(): void {
    for (const node of this.editor.nodes()) {
      const input = node.lgDef?.inputs.find((i) => i.imageUpload);
      if (!input) continue;
      const value = (node.widgets ?? []).find((w) => w.name === input.name)?.value;
      if (typeof value !== "string" || !value) continue;
      const url = this.api.viewUrl(splitInputName(value));
      const current = node.lgRuntime.images[0];
      if (current && current.dataset.src === url) continue;
      const img = new Image();
      img.dataset.src = url;
      img.onload = () => {
        this.editor.ensureImageSpace(node, 200);
        this.editor.redraw();
      };
      img.src = url;
      node.lgRuntime.images = [img];
    }
  }

  // ------------------------------------------------------------------ queueing

  /** Convert the active workflow and queue it; marks validation errors on the canvas. */
  async queuePrompt(front: boolean): Promise<string | null> {
    const tab = this.workspace.active;
    if (!tab) return null;
    this.editor.checkForChanges();
    const doc = this.editor.toDoc();
    const { prompt, missingTypes } = workflowToPrompt(doc, this.defs);
    this.editor.clearRunState();
    if (missingTypes.length) {
      for (const n of this.editor.nodes()) if (missingTypes.includes(n.type) && n.lgRuntime) n.lgRuntime.error = `Node type '${n.type}' is not installed on the server`;
      this.editor.redraw();
      toast("Cannot queue: missing node types", "error", missingTypes.join(", "));
      return null;
    }
    if (!Object.keys(prompt).length) {
      toast("Nothing to run", "warning", "Add an output node such as Save Image.");
      return null;
    }
    // Events for this prompt can arrive before the POST answers: register its id first.
    const promptId = crypto.randomUUID();
    this.promptTabs.set(promptId, tab.id);
    try {
      const extra = { extra_pnginfo: { workflow: toFile(doc, this.defs) }, lg: { title: displayName(tab.path), tab: tab.id } };
      const res = await this.api.queuePrompt(prompt, extra, front, promptId);
      this.promptTabs.set(res.prompt_id, tab.id);
      if (res.node_errors && Object.keys(res.node_errors).length) this.markNodeErrors(res.node_errors);
      this.applySeedControls();
      void this.queuePanel.refresh();
      return res.prompt_id;
    } catch (e) {
      this.promptTabs.delete(promptId);
      if (e instanceof ApiError && e.body?.node_errors) {
        this.markNodeErrors(e.body.node_errors);
        const err = e.body.error;
        const detail = typeof err === "object" && err ? err.details || err.message : e.message;
        toast("Prompt failed validation", "error", detail);
      } else {
        toast("Could not queue", "error", e instanceof Error ? e.message : String(e));
      }
      return null;
    }
  }

  /** control_after_generate: change seeds after queueing, as one undoable step. */
  private applySeedControls(): void {
    const doc = this.editor.toDoc();
    const changes = seedChanges(doc, this.defs);
    if (!changes.length) return;
    for (const [id, name, value] of changes) {
      const node = this.editor.nodeById(id);
      const w = node?.widgets?.find((x) => x.name === name);
      if (w) w.value = value;
    }
    this.editor.checkForChanges();
    this.editor.redraw();
  }

  markNodeErrors(errors: NodeErrors): void {
    for (const [id, info] of Object.entries(errors)) {
      const node = this.editor.nodeById(id);
      if (!node) continue;
      for (const err of info.errors) {
        const name = err.extra_info?.input_name;
        const text = err.details ? `${err.message}: ${err.details}` : err.message;
        if (typeof name === "string") node.lgRuntime.inputErrors.set(name, text);
        else node.lgRuntime.error = text;
      }
      if (!node.lgRuntime.error && node.lgRuntime.inputErrors.size) {
        node.lgRuntime.error = [...node.lgRuntime.inputErrors].map(([k, v]) => `${k}: ${v}`).join(" · ");
      }
    }
    this.editor.redraw();
  }

  // ------------------------------------------------------------------ run feedback

  private tabForPrompt(promptId: unknown): Tab | undefined {
    const tabId = this.promptTabs.get(String(promptId));
    return this.workspace.tabs.find((t) => t.id === tabId);
  }

  private isActivePrompt(promptId: unknown): boolean {
    const tab = this.tabForPrompt(promptId);
    return !!tab && tab.id === this.workspace.activeId;
  }

  private onServerMessage(msg: { type: string; data: Record<string, unknown> }): void {
    const d = msg.data ?? {};
    const pid = d.prompt_id;
    switch (msg.type) {
      case "status": {
        const remaining = (d.status as { exec_info?: { queue_remaining?: number } } | undefined)?.exec_info?.queue_remaining;
        if (typeof remaining === "number") this.queueCountEl.textContent = String(remaining);
        void this.queuePanel.refresh();
        break;
      }
      case "execution_start":
        this.runningPrompt = String(pid);
        if (this.isActivePrompt(pid)) this.editor.clearRunState();
        void this.queuePanel.refresh();
        break;
      case "execution_cached":
        if (this.isActivePrompt(pid)) {
          for (const id of (d.nodes as string[]) ?? []) {
            const n = this.editor.nodeById(id);
            if (n) n.lgRuntime.cached = true;
          }
          this.editor.redraw();
        }
        break;
      case "executing": {
        const node = d.node == null ? null : String(d.node);
        if (this.isActivePrompt(pid)) {
          if (this.runningNode) {
            const prev = this.editor.nodeById(this.runningNode);
            if (prev) {
              prev.lgRuntime.running = false;
              prev.lgRuntime.progress = undefined;
              prev.lgRuntime.preview = undefined;
            }
          }
          if (node) {
            const n = this.editor.nodeById(node);
            if (n) {
              n.lgRuntime.running = true;
              n.lgRuntime.cached = false;
            }
          }
          this.editor.redraw();
        }
        this.runningNode = node;
        if (node === null) void this.queuePanel.refresh();
        break;
      }
      case "progress": {
        const value = Number(d.value);
        const max = Number(d.max) || 1;
        if (this.isActivePrompt(pid)) {
          const n = this.editor.nodeById(String(d.node));
          if (n) n.lgRuntime.progress = value / max;
          this.editor.redraw();
        }
        if (pid) this.queuePanel.setProgress(String(pid), value / max);
        break;
      }
      case "executed": {
        const output = d.output as { images?: ImageRef[] } | undefined;
        const tab = this.tabForPrompt(pid);
        if (tab && output?.images) {
          tab.outputs[String(d.node)] = output.images;
          if (tab.id === this.workspace.activeId) this.showImages(String(d.node), output.images);
        }
        break;
      }
      case "execution_error": {
        if (this.isActivePrompt(pid)) {
          const n = this.editor.nodeById(String(d.node_id));
          if (n) {
            n.lgRuntime.error = `${String(d.exception_type ?? "Error")}: ${String(d.exception_message ?? "")}`;
            n.lgRuntime.running = false;
          }
          this.editor.redraw();
        }
        toast(`Error in ${String(d.node_type ?? "node")} #${String(d.node_id ?? "")}`, "error", String(d.exception_message ?? ""));
        this.runFinished();
        break;
      }
      case "execution_interrupted":
        toast("Run stopped", "warning");
        this.runFinished();
        break;
      case "execution_success":
        this.runFinished();
        break;
      default:
        break;
    }
  }

  private runFinished(): void {
    for (const n of this.editor.nodes()) {
      n.lgRuntime.running = false;
      n.lgRuntime.progress = undefined;
      n.lgRuntime.preview = undefined;
    }
    this.runningPrompt = null;
    this.runningNode = null;
    this.editor.redraw();
    void this.queuePanel.refresh();
  }

  private onPreview(frame: { blob: Blob; nodeId?: string; promptId?: string }): void {
    const nodeId = frame.nodeId ?? this.runningNode;
    const promptId = frame.promptId ?? this.runningPrompt;
    if (!nodeId || !this.isActivePrompt(promptId)) return;
    const node = this.editor.nodeById(nodeId);
    // A frame that arrives after its node finished would leave a stale preview behind.
    if (!node || nodeId !== this.runningNode) return;
    const img = new Image();
    const url = URL.createObjectURL(frame.blob);
    img.onload = () => {
      if (!node.lgRuntime.running) {
        URL.revokeObjectURL(url);
        return;
      }
      const old = node.lgRuntime.preview;
      if (old?.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
      node.lgRuntime.preview = img;
      this.editor.ensureImageSpace(node, 220);
      this.editor.redraw();
    };
    img.src = url;
  }

  private showImages(nodeId: string, images: ImageRef[]): void {
    const node = this.editor.nodeById(nodeId);
    if (!node) return;
    node.lgRuntime.preview = undefined;
    node.lgRuntime.images = images.map((ref) => {
      const img = new Image();
      img.onload = () => this.editor.redraw();
      img.src = this.api.viewUrl(ref);
      img.dataset.filename = ref.filename;
      return img;
    });
    this.editor.ensureImageSpace(node, 260);
    this.editor.redraw();
  }

  private labelFor(promptId: string, item: QueueItem | undefined): string {
    const extra = item?.[3] as { lg?: { title?: string } } | undefined;
    const tab = this.tabForPrompt(promptId);
    return extra?.lg?.title ?? (tab ? displayName(tab.path) : `Job ${promptId.slice(0, 8)}`);
  }

  private async loadFromHistory(entry: HistoryEntry, promptId: string): Promise<void> {
    const extra = entry.prompt?.[3] as { extra_pnginfo?: { workflow?: unknown } } | undefined;
    const wf = extra?.extra_pnginfo?.workflow;
    let loaded: LoadedDoc;
    try {
      loaded = wf ? this.parseWorkflowData(wf, this.labelFor(promptId, entry.prompt)) : this.parseWorkflowData(entry.prompt[2], "History");
    } catch (e) {
      toast("Could not load that run", "error", String(e));
      return;
    }
    const tab = await this.newWorkflow(loaded.doc, `${loaded.name} (run)`);
    const outputs = entry.outputs ?? {};
    for (const [nodeId, out] of Object.entries(outputs)) if (out.images) tab.outputs[nodeId] = out.images;
    for (const [nodeId, images] of Object.entries(tab.outputs)) this.showImages(nodeId, images);
    this.reportWarnings(loaded);
  }

  // ------------------------------------------------------------------ files

  parseWorkflowData(data: unknown, name: string): LoadedDoc {
    if (isWorkflowFile(data)) return { doc: fromFile(data, this.defs), warnings: this.missingWarnings(data), name };
    if (isOurWorkflow(data)) return { doc: validateWorkflow(data), warnings: [], name };
    if (isComfyUiWorkflow(data)) return { ...importComfyUi(data, this.defs), name };
    if (isApiPrompt(data)) return { ...importApiPrompt(data, this.defs), name };
    throw new Error("this file is not a workflow (neither Latentgraph, ComfyUI workflow nor API prompt)");
  }

  private missingWarnings(file: { nodes: Record<string, { type: string }> }): string[] {
    const missing = [...new Set(Object.values(file.nodes).map((n) => n.type))].filter((t) => !this.defs.has(t) && t !== "Reroute" && t !== "Note");
    return missing.map((t) => `unknown node type '${t}' loaded as a placeholder`);
  }

  parseWorkflowText(text: string, name: string): LoadedDoc {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new Error(`invalid JSON: ${(e as Error).message}`);
    }
    return this.parseWorkflowData(data, name);
  }

  /** Open any supported workflow value (our file, ComfyUI UI or API format) in a new tab. */
  async openData(data: unknown, name: string): Promise<Tab> {
    const loaded = this.parseWorkflowData(data, name);
    const tab = await this.newWorkflow(loaded.doc, loaded.name);
    this.reportWarnings(loaded);
    return tab;
  }

  /** The active workflow as the API prompt it would queue (export and tests). */
  currentPrompt(): unknown {
    return workflowToPrompt(this.editor.toDoc(), this.defs).prompt;
  }

  /** The active workflow as the saved file format. */
  currentFile(): unknown {
    return toFile(this.editor.toDoc(), this.defs);
  }

  /** Open a dropped or chosen file (workflow JSON or an image with embedded workflow). */
  async openFile(file: File): Promise<void> {
    const name = file.name.replace(/\.(json|png)$/i, "");
    try {
      let loaded: LoadedDoc;
      if (file.type === "image/png" || /\.png$/i.test(file.name)) {
        const chunks = await readPngText(new Uint8Array(await file.arrayBuffer()));
        if (chunks.workflow) loaded = this.parseWorkflowText(chunks.workflow, name);
        else if (chunks.prompt) loaded = this.parseWorkflowText(chunks.prompt, name);
        else throw new Error("this PNG has no embedded workflow");
      } else {
        loaded = this.parseWorkflowText(await file.text(), name);
      }
      await this.newWorkflow(loaded.doc, loaded.name);
      this.reportWarnings(loaded);
      toast(`Loaded ${file.name}`, "success");
    } catch (e) {
      toast(`Could not load ${file.name}`, "error", e instanceof Error ? e.message : String(e));
    }
  }

  private reportWarnings(loaded: LoadedDoc): void {
    if (loaded.warnings.length) toast(`${loaded.warnings.length} import note(s)`, "warning", loaded.warnings.slice(0, 6).join("\n"));
  }

  private openFileDialog(): void {
    const input = h("input", { type: "file", accept: ".json,.png,application/json,image/png" });
    input.addEventListener("change", () => {
      const f = input.files?.[0];
      if (f) void this.openFile(f);
    });
    input.click();
  }

  private download(name: string, data: unknown): void {
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const a = h("a", { href: URL.createObjectURL(blob), download: name });
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  private exportWorkflow(): void {
    const tab = this.workspace.active;
    this.download(`${tab ? displayName(tab.path) : "workflow"}.json`, toFile(this.editor.toDoc(), this.defs));
  }

  /** The active workflow in ComfyUI's UI format. */
  currentComfyUi(): unknown {
    return toComfyUi(this.editor.toDoc(), this.defs);
  }

  private exportComfy(): void {
    const tab = this.workspace.active;
    this.download(`${tab ? displayName(tab.path) : "workflow"}_comfyui.json`, this.currentComfyUi());
  }

  private exportApi(): void {
    const tab = this.workspace.active;
    const { prompt, missingTypes } = workflowToPrompt(this.editor.toDoc(), this.defs);
    if (missingTypes.length) toast("Exported with unknown node types", "warning", missingTypes.join(", "));
    this.download(`${tab ? displayName(tab.path) : "workflow"}_api.json`, prompt);
  }

  private installDragDrop(root: HTMLElement): void {
    root.addEventListener("dragover", (e) => {
      if (e.dataTransfer?.types.includes("Files")) {
        e.preventDefault();
        root.classList.add("drop-target");
      }
    });
    root.addEventListener("dragleave", (e) => {
      if (e.target === root || !root.contains(e.relatedTarget as Node)) root.classList.remove("drop-target");
    });
    root.addEventListener("drop", (e) => {
      root.classList.remove("drop-target");
      const file = e.dataTransfer?.files?.[0];
      if (!file) return;
      e.preventDefault();
      // An image dropped on a LoadImage node goes into that node; anything else opens as a workflow.
      const canvas = this.editor.canvas;
      if (file.type.startsWith("image/") && e.target === this.editor.element) {
        const p = canvas.convertEventToCanvasOffset(e);
        const node = this.editor.graph.getNodeOnPos(p[0], p[1]) as unknown as LgNode | null;
        const input = node?.lgDef?.inputs.find((i) => i.imageUpload);
        const widget = input && (node!.widgets ?? []).find((w) => w.name === input.name);
        if (node && widget) {
          void this.uploadInto(node, widget as LgWidget, file);
          return;
        }
      }
      void this.openFile(file);
    });
  }

  // ------------------------------------------------------------------ keyboard

  private installShortcuts(): void {
    window.addEventListener(
      "keydown",
      (e) => {
        const target = e.target as HTMLElement;
        const typing = target.closest("input, textarea, select, [contenteditable]") !== null;
        const mod = e.ctrlKey || e.metaKey;
        if (mod && e.key === "Enter") {
          e.preventDefault();
          e.stopPropagation();
          if (e.altKey) void this.api.interrupt();
          else void this.queuePrompt(e.shiftKey);
          return;
        }
        if (mod && e.key.toLowerCase() === "s") {
          e.preventDefault();
          void this.saveActive();
          return;
        }
        if (mod && e.key.toLowerCase() === "o") {
          e.preventDefault();
          this.openFileDialog();
          return;
        }
        if (typing || this.search.isOpen || document.querySelector(".modal-overlay, .graphdialog")) return;
        const key = e.key.toLowerCase();
        if (mod && key === "z" && !e.shiftKey) {
          e.preventDefault();
          this.editor.undo();
        } else if (mod && (key === "y" || (key === "z" && e.shiftKey))) {
          e.preventDefault();
          this.editor.redo();
        } else if (mod && key === "b") {
          e.preventDefault();
          this.editor.setMode(this.editor.selectedNodes(), "bypass");
        } else if (mod && key === "m") {
          e.preventDefault();
          this.editor.setMode(this.editor.selectedNodes(), "mute");
        } else if (mod && key === "g") {
          e.preventDefault();
          this.editor.groupSelected();
        } else if (!mod && !e.altKey) {
          if (key === "q") this.togglePanel("queue");
          else if (key === "w") this.togglePanel("workflows");
          else if (key === "n") this.togglePanel("library");
          else if (key === ".") this.editor.fitView();
          else if (key === "r") void this.loadDefs(true);
        }
      },
      true,
    );
  }
}

/** "sub/dir/name.png" -> /view reference for the input folder. */
export function splitInputName(name: string): ImageRef {
  const i = name.lastIndexOf("/");
  return i < 0 ? { filename: name, type: "input", subfolder: "" } : { filename: name.slice(i + 1), subfolder: name.slice(0, i), type: "input" };
}
