/**
 * The editor application's composition root: builds the layout and wires the canvas, the server
 * client, tabs, panels, run feedback (editor/runState), files (ui/fileIO) and keyboard shortcuts.
 */
import { ApiClient } from "./api/client";
import { type EditorEvents, GraphEditor, type LinkDropContext } from "./editor/graph";
import { EDITOR_NODES } from "./editor/nodes";
import { RunState } from "./editor/runState";
import type { Op } from "./model/commands";
import { defaultWorkflow } from "./model/defaultWorkflow";
import { type NodeDef, type NodeDefs, parseObjectInfo } from "./model/nodedefs";
import { toFile } from "./model/fileFormat";
import { emptyWorkflow, type WorkflowDoc } from "./model/workflow";
import { DesktopShell, whenDesktop, windowTitle } from "./ui/desktop";
import { confirmDialog, dropdownMenu, h, type MenuItem, promptText, toast } from "./ui/dom";
import { FileIO, splitInputName } from "./ui/fileIO";
import { LibraryPanel } from "./ui/library";
import { QueuePanel } from "./ui/queue";
import { SearchDialog } from "./ui/search";
import { installShortcuts } from "./ui/shortcuts";
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
  readonly run = new RunState(this);
  readonly files = new FileIO(this);
  ready = false;

  async start(root: HTMLElement): Promise<void> {
    this.buildLayout(root);
    installShortcuts({
      queue: (front) => void this.run.queuePrompt(front),
      interrupt: () => void this.api.interrupt(),
      save: () => void this.files.saveActive(),
      open: () => this.files.openFileDialog(),
      undo: () => this.editor.undo(),
      redo: () => this.editor.redo(),
      bypassSelected: () => this.editor.setMode(this.editor.selectedNodes(), "bypass"),
      muteSelected: () => this.editor.setMode(this.editor.selectedNodes(), "mute"),
      groupSelected: () => this.editor.groupSelected(),
      togglePanel: (name) => this.togglePanel(name),
      fitView: () => this.editor.fitView(),
      refreshDefs: () => void this.loadDefs(true),
      dialogOpen: () => this.search.isOpen,
    });
    this.files.installDragDrop(root);
    this.api.addEventListener("message", (e) => this.run.onServerMessage((e as CustomEvent).detail));
    this.api.addEventListener("preview", (e) => this.run.onPreview((e as CustomEvent).detail));
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
    whenDesktop((api) => {
      this.files.desktop = new DesktopShell(api, this.files, this.workspace, (tab) => this.switchTo(tab));
      this.updateTitle();
      void this.files.desktop.pullFiles();
    });
    this.ready = true;
    document.body.dataset.ready = "true";
  }

  private buildLayout(root: HTMLElement): void {
    const canvas = h("canvas", { id: "graph-canvas", tabindex: "0" });
    const canvasWrap = h("div", { class: "canvas-wrap" }, canvas);
    this.tabsEl = h("div", { class: "tabs", role: "tablist" });
    this.queueCountEl = h("span", { class: "queue-count" }, "0");
    const queueBtn = h("button", { class: "btn btn-primary queue-btn", id: "queue-button", title: "Queue (Ctrl+Enter)",
      onClick: () => void this.run.queuePrompt(false) }, "▶ Queue");
    const stopBtn = h("button", { class: "btn", id: "interrupt-button", title: "Stop the running job (Ctrl+Alt+Enter)",
      onClick: () => void this.api.interrupt().catch(() => undefined) }, "■");
    const undoBtn = h("button", { class: "icon-btn", id: "undo-button", title: "Undo (Ctrl+Z)", onClick: () => this.editor.undo() }, "↶");
    const redoBtn = h("button", { class: "icon-btn", id: "redo-button", title: "Redo (Ctrl+Y)", onClick: () => this.editor.redo() }, "↷");
    const menu = this.buildMenu();
    const newTab = h("button", { class: "icon-btn new-tab", title: "New workflow",
      onClick: () => void this.newWorkflow(defaultWorkflow(this.defs), "Untitled") }, "+");
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
      uploadImage: (node, widget) => this.files.pickUpload(node, widget),
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
      open: (path) => void this.files.openPath(path),
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
      loadFromHistory: (entry, id) => void this.files.loadFromHistory(entry, id),
      labelFor: (id, item) => this.run.labelFor(id, item),
    });
    this.workspace.addEventListener("change", () => this.renderTabs());
  }

  private buildMenu(): HTMLElement {
    const items: MenuItem[] = [
      ["New workflow", () => void this.newWorkflow(defaultWorkflow(this.defs), "Untitled")],
      ["Blank workflow", () => void this.newWorkflow(emptyWorkflow(), "Untitled")],
      ["Open file…", () => this.files.openFileDialog(), "Ctrl+O"],
      ["Save", () => void this.files.saveActive(), "Ctrl+S"],
      ["Save as…", () => void this.files.saveAs()],
      ["Export workflow (JSON)", () => this.files.exportWorkflow()],
      ["Export API prompt", () => this.files.exportApi()],
      ["Export for ComfyUI", () => this.files.exportComfy()],
      ["Fit view", () => this.editor.fitView(), "."],
      ["Refresh node definitions", () => void this.loadDefs(true), "R"],
      ["Clear canvas", () => void this.clearCanvas()],
    ];
    return dropdownMenu("workflow-menu", "Workflow ▾", items);
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

  showQueueRemaining(count: number): void {
    this.queueCountEl.textContent = String(count);
  }

  private setConnection(ok: boolean): void {
    this.statusEl.textContent = ok ? "● Connected" : "● Reconnecting…";
    this.statusEl.classList.toggle("ok", ok);
    if (ok) void this.queuePanel?.refresh();
  }


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
    this.updateTitle();
  }

  /** The page title (and the desktop window's) names the active workflow. */
  private updateTitle(): void {
    const title = windowTitle(this.workspace.active);
    document.title = title;
    this.files.desktop?.setTitle(title);
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

  showTab(tab: Tab): void {
    this.workspace.activeId = tab.id;
    this.editor.log = tab.log;
    this.editor.load(tab.doc, false);
    this.editor.clearRunState();
    for (const [nodeId, images] of Object.entries(tab.outputs)) this.run.showImages(nodeId, images);
    this.files.refreshInputPreviews();
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

  private async clearCanvas(): Promise<void> {
    if (!(await confirmDialog("Clear canvas", "Remove every node from this workflow? You can undo this.", "Clear"))) return;
    this.editor.checkForChanges();
    this.editor.graph.clear();
    this.editor.scheduleCheck();
  }


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
    if (ops.some((o) => o.op === "changeNode" || o.op === "addNode")) this.files.refreshInputPreviews();
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
}
