/**
 * Files in and out of the editor: opening workflows (JSON in any supported format, PNGs with an
 * embedded workflow, the user's saved files, past runs), saving, exports, image uploads into
 * LoadImage-style nodes, and drag-and-drop of all of these.
 */
import type { ApiClient, HistoryEntry, ImageRef } from "../api/client";
import type { GraphEditor } from "../editor/graph";
import type { LgNode, LgWidget } from "../editor/nodes";
import type { RunState } from "../editor/runState";
import { importApiPrompt, importComfyUi, isApiPrompt, isComfyUiWorkflow } from "../model/comfy";
import { toComfyUi } from "../model/comfyExport";
import { fromFile, isWorkflowFile, toFile } from "../model/fileFormat";
import type { NodeDefs } from "../model/nodedefs";
import { readPngText } from "../model/png";
import { workflowToPrompt } from "../model/prompt";
import { isOurWorkflow, validateWorkflow, type WorkflowDoc } from "../model/workflow";
import type { DesktopShell } from "./desktop";
import { h, promptText, toast } from "./dom";
import { displayName, type Tab, type Workspace } from "./workspace";

/** A parsed document with its import notes and the name its tab gets. */
export interface LoadedDoc {
  doc: WorkflowDoc;
  warnings: string[];
  name: string;
}

/** The application's side of file handling: where documents go once read. */
export interface FileHost {
  readonly api: ApiClient;
  readonly workspace: Workspace;
  readonly editor: GraphEditor;
  readonly defs: NodeDefs;
  readonly run: RunState;
  newWorkflow(doc: WorkflowDoc, name: string): Promise<Tab>;
  showTab(tab: Tab): void;
  switchTo(tab: Tab): void;
  syncActive(): void;
}

/** "sub/dir/name.png" -> /view reference for the input folder. */
export function splitInputName(name: string): ImageRef {
  const i = name.lastIndexOf("/");
  return i < 0 ? { filename: name, type: "input", subfolder: "" } : { filename: name.slice(i + 1), subfolder: name.slice(0, i), type: "input" };
}

export class FileIO {
  /** Set in desktop mode: native dialogs and files on disk instead of the browser's. */
  desktop: DesktopShell | null = null;

  constructor(private readonly host: FileHost) {}

  private get editor(): GraphEditor {
    return this.host.editor;
  }

  private get workspace(): Workspace {
    return this.host.workspace;
  }

  private get defs(): NodeDefs {
    return this.host.defs;
  }

  async saveActive(): Promise<void> {
    const tab = this.workspace.active;
    if (!tab) return;
    this.host.syncActive();
    try {
      await this.workspace.save(tab);
      await this.desktop?.writeBack(tab);
      toast(`Saved ${tab.file?.path ?? displayName(tab.path)}`, "success");
    } catch (e) {
      toast("Save failed", "error", String(e));
    }
  }

  async saveAs(): Promise<void> {
    const tab = this.workspace.active;
    if (!tab) return;
    if (this.desktop) {
      this.host.syncActive();
      await this.desktop.saveAs(tab).catch((e) => toast("Save failed", "error", String(e)));
      return;
    }
    const name = await promptText("Save workflow as", displayName(tab.path));
    if (!name) return;
    this.host.syncActive();
    const path = await this.workspace.uniquePath(name);
    const copy = this.workspace.addTab(tab.doc, path, false);
    await this.workspace.save(copy).catch((e) => toast("Save failed", "error", String(e)));
    this.host.showTab(copy);
  }

  async openPath(path: string): Promise<void> {
    const open = this.workspace.findByPath(path);
    if (open) {
      this.host.switchTo(open);
      return;
    }
    try {
      const text = await this.host.api.readUserFile(path);
      const loaded = this.parseWorkflowText(text, displayName(path));
      this.host.syncActive();
      const saved = isWorkflowFile(JSON.parse(text));
      const tab = this.workspace.addTab(loaded.doc, saved ? path : await this.workspace.uniquePath(displayName(path)), saved);
      this.host.showTab(tab);
      if (!loaded.doc.view) this.editor.fitView();
      this.reportWarnings(loaded);
    } catch (e) {
      toast(`Could not open ${displayName(path)}`, "error", String(e));
    }
  }

  pickUpload(node: LgNode, widget: LgWidget): void {
    const input = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp" });
    input.addEventListener("change", () => {
      const file = input.files?.[0];
      if (file) void this.uploadInto(node, widget, file);
    });
    input.click();
  }

  async uploadInto(node: LgNode, widget: LgWidget, file: File): Promise<void> {
    try {
      const ref = await this.host.api.uploadImage(file, file.name);
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
  refreshInputPreviews(): void {
    for (const node of this.editor.nodes()) {
      const input = node.lgDef?.inputs.find((i) => i.imageUpload);
      if (!input) continue;
      const value = (node.widgets ?? []).find((w) => w.name === input.name)?.value;
      if (typeof value !== "string" || !value) continue;
      const url = this.host.api.viewUrl(splitInputName(value));
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

  async loadFromHistory(entry: HistoryEntry, promptId: string): Promise<void> {
    const extra = entry.prompt?.[3] as { extra_pnginfo?: { workflow?: unknown } } | undefined;
    const wf = extra?.extra_pnginfo?.workflow;
    let loaded: LoadedDoc;
    try {
      loaded = wf ? this.parseWorkflowData(wf, this.host.run.labelFor(promptId, entry.prompt)) : this.parseWorkflowData(entry.prompt[2], "History");
    } catch (e) {
      toast("Could not load that run", "error", String(e));
      return;
    }
    const tab = await this.host.newWorkflow(loaded.doc, `${loaded.name} (run)`);
    const outputs = entry.outputs ?? {};
    for (const [nodeId, out] of Object.entries(outputs)) if (out.images) tab.outputs[nodeId] = out.images;
    for (const [nodeId, images] of Object.entries(tab.outputs)) this.host.run.showImages(nodeId, images);
    this.reportWarnings(loaded);
  }

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
    const tab = await this.host.newWorkflow(loaded.doc, loaded.name);
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

  /** The active workflow in ComfyUI's UI format. */
  currentComfyUi(): unknown {
    return toComfyUi(this.editor.toDoc(), this.defs);
  }

  /** The active workflow as a file's text, in our format or ComfyUI's. */
  activeText(format: "latentgraph" | "comfyui"): string {
    return JSON.stringify(format === "comfyui" ? this.currentComfyUi() : this.currentFile(), null, 2);
  }

  /** Open a dropped or chosen file (workflow JSON or an image with embedded workflow); its tab. */
  async openFile(file: File): Promise<Tab | null> {
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
      const tab = await this.host.newWorkflow(loaded.doc, loaded.name);
      this.reportWarnings(loaded);
      toast(`Loaded ${file.name}`, "success");
      return tab;
    } catch (e) {
      toast(`Could not load ${file.name}`, "error", e instanceof Error ? e.message : String(e));
      return null;
    }
  }

  private reportWarnings(loaded: LoadedDoc): void {
    if (loaded.warnings.length) toast(`${loaded.warnings.length} import note(s)`, "warning", loaded.warnings.slice(0, 6).join("\n"));
  }

  openFileDialog(): void {
    if (this.desktop) {
      void this.desktop.openDialog().catch((e) => toast("Open failed", "error", String(e)));
      return;
    }
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

  exportWorkflow(): void {
    const tab = this.workspace.active;
    this.download(`${tab ? displayName(tab.path) : "workflow"}.json`, this.currentFile());
  }

  exportComfy(): void {
    const tab = this.workspace.active;
    this.download(`${tab ? displayName(tab.path) : "workflow"}_comfyui.json`, this.currentComfyUi());
  }

  exportApi(): void {
    const tab = this.workspace.active;
    const { prompt, missingTypes } = workflowToPrompt(this.editor.toDoc(), this.defs);
    if (missingTypes.length) toast("Exported with unknown node types", "warning", missingTypes.join(", "));
    this.download(`${tab ? displayName(tab.path) : "workflow"}_api.json`, prompt);
  }

  installDragDrop(root: HTMLElement): void {
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
}
