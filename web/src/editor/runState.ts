/**
 * A run as the canvas shows it: queueing the active workflow, then the server's messages, preview
 * frames and errors drawn on the nodes of the tab that queued the prompt.
 */
import { ApiError, type ApiClient, type ImageRef, type NodeErrors, type QueueItem } from "../api/client";
import type { NodeDefs } from "../model/nodedefs";
import { toFile } from "../model/fileFormat";
import { workflowToPrompt } from "../model/prompt";
import { seedChanges } from "../model/seed";
import { toast } from "../ui/dom";
import type { QueuePanel } from "../ui/queue";
import { displayName, type Tab, type Workspace } from "../ui/workspace";
import type { GraphEditor } from "./graph";

/** What a run reads and draws on, owned by the application. */
export interface RunHost {
  readonly api: ApiClient;
  readonly workspace: Workspace;
  readonly editor: GraphEditor;
  readonly defs: NodeDefs;
  readonly queuePanel: QueuePanel;
  showQueueRemaining(count: number): void;
}

export class RunState {
  /** prompt id -> tab id, for routing run events to the workflow that queued them. */
  readonly promptTabs = new Map<string, string>();
  runningPrompt: string | null = null;
  private runningNode: string | null = null;

  constructor(private readonly host: RunHost) {}

  private get editor(): GraphEditor {
    return this.host.editor;
  }

  private get workspace(): Workspace {
    return this.host.workspace;
  }

  /** Convert the active workflow and queue it; marks validation errors on the canvas. */
  async queuePrompt(front: boolean): Promise<string | null> {
    const tab = this.workspace.active;
    if (!tab) return null;
    this.editor.checkForChanges();
    const doc = this.editor.toDoc();
    const { prompt, missingTypes } = workflowToPrompt(doc, this.host.defs);
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
      const extra = { extra_pnginfo: { workflow: toFile(doc, this.host.defs) }, lg: { title: displayName(tab.path), tab: tab.id } };
      const res = await this.host.api.queuePrompt(prompt, extra, front, promptId);
      this.promptTabs.set(res.prompt_id, tab.id);
      if (res.node_errors && Object.keys(res.node_errors).length) this.markNodeErrors(res.node_errors);
      this.applySeedControls();
      void this.host.queuePanel.refresh();
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
    const changes = seedChanges(doc, this.host.defs);
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

  tabForPrompt(promptId: unknown): Tab | undefined {
    const tabId = this.promptTabs.get(String(promptId));
    return this.workspace.tabs.find((t) => t.id === tabId);
  }

  private isActivePrompt(promptId: unknown): boolean {
    const tab = this.tabForPrompt(promptId);
    return !!tab && tab.id === this.workspace.activeId;
  }

  onServerMessage(msg: { type: string; data: Record<string, unknown> }): void {
    const d = msg.data ?? {};
    const pid = d.prompt_id;
    switch (msg.type) {
      case "status": {
        const remaining = (d.status as { exec_info?: { queue_remaining?: number } } | undefined)?.exec_info?.queue_remaining;
        if (typeof remaining === "number") this.host.showQueueRemaining(remaining);
        void this.host.queuePanel.refresh();
        break;
      }
      case "execution_start":
        this.runningPrompt = String(pid);
        if (this.isActivePrompt(pid)) this.editor.clearRunState();
        void this.host.queuePanel.refresh();
        break;
      case "lg.node_report":
        if (this.isActivePrompt(pid)) {
          const n = this.editor.nodeById(String(d.node));
          if (n) {
            n.lgRuntime.report = { state: String(d.state), reason: String(d.reason ?? "") };
            this.editor.redraw();
          }
        }
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
        if (node === null) void this.host.queuePanel.refresh();
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
        if (pid) this.host.queuePanel.setProgress(String(pid), value / max);
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
    void this.host.queuePanel.refresh();
  }

  onPreview(frame: { blob: Blob; nodeId?: string; promptId?: string }): void {
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

  showImages(nodeId: string, images: ImageRef[]): void {
    const node = this.editor.nodeById(nodeId);
    if (!node) return;
    node.lgRuntime.preview = undefined;
    node.lgRuntime.images = images.map((ref) => {
      const img = new Image();
      img.onload = () => this.editor.redraw();
      img.src = this.host.api.viewUrl(ref);
      img.dataset.filename = ref.filename;
      return img;
    });
    this.editor.ensureImageSpace(node, 260);
    this.editor.redraw();
  }

  labelFor(promptId: string, item: QueueItem | undefined): string {
    const extra = item?.[3] as { lg?: { title?: string } } | undefined;
    const tab = this.tabForPrompt(promptId);
    return extra?.lg?.title ?? (tab ? displayName(tab.path) : `Job ${promptId.slice(0, 8)}`);
  }
}
