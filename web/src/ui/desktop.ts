/**
 * Desktop mode (`python main.py --desktop`): the page runs in a pywebview window whose shell
 * answers `window.pywebview.api` (desktop/bridge.py). There, Open… and Save as… use the native
 * dialogs, files opened with the app arrive in new tabs, Save writes back to the file a tab came
 * from, and the window title follows the active workflow. In a browser none of this is active.
 */
import { isComfyUiWorkflow } from "../model/comfy";
import { toast } from "./dom";
import type { FileIO } from "./fileIO";
import { displayName, docKey, type Tab, type Workspace } from "./workspace";

export interface DesktopFile {
  name: string;
  path: string;
  data?: string; // base64
  error?: string;
}

export interface WrittenFile {
  path: string;
  name: string;
}

/** The shell's methods (Python's DesktopBridge); each call returns a promise in the page. */
export interface DesktopApi {
  set_title(title: string): Promise<void>;
  take_files(): Promise<DesktopFile[]>;
  open_dialog(): Promise<DesktopFile[]>;
  save_dialog(suggestedName: string, text: string): Promise<WrittenFile | null>;
  write_file(path: string, text: string): Promise<WrittenFile>;
}

declare global {
  interface Window {
    pywebview?: { api: DesktopApi };
  }
}

/** Call `onReady` with the shell's API once pywebview has injected it (never, in a browser). */
export function whenDesktop(onReady: (api: DesktopApi) => void): void {
  if (window.pywebview?.api?.take_files) {
    onReady(window.pywebview.api);
    return;
  }
  window.addEventListener("pywebviewready", () => window.pywebview?.api && onReady(window.pywebview.api), { once: true });
}

/** "● name — Latentgraph" while the workflow has unsaved changes. */
export function windowTitle(tab: Tab | undefined): string {
  if (!tab) return "Latentgraph";
  const unsaved = tab.file ? docKey(tab.doc) !== tab.file.savedKey : tab.dirty;
  return `${unsaved ? "● " : ""}${tab.file ? tab.file.name.replace(/\.json$/i, "") : displayName(tab.path)} — Latentgraph`;
}

function toFileObject(f: DesktopFile): File {
  const bytes = Uint8Array.from(atob(f.data ?? ""), (c) => c.charCodeAt(0));
  return new File([bytes], f.name, { type: /\.png$/i.test(f.name) ? "image/png" : "application/json" });
}

export class DesktopShell {
  constructor(
    private readonly api: DesktopApi,
    private readonly files: FileIO,
    private readonly workspace: Workspace,
    private readonly switchTo: (tab: Tab) => void,
  ) {
    window.addEventListener("lg-desktop-files", () => void this.pullFiles());
  }

  setTitle(title: string): void {
    void this.api.set_title(title).catch(() => undefined);
  }

  /** Files the shell holds for us: given on the command line or by a later launch. */
  async pullFiles(): Promise<void> {
    for (const f of await this.api.take_files()) await this.open(f);
  }

  async openDialog(): Promise<void> {
    for (const f of await this.api.open_dialog()) await this.open(f);
  }

  private async open(f: DesktopFile): Promise<void> {
    const already = this.workspace.tabs.find((t) => t.file?.path === f.path);
    if (already) {
      this.switchTo(already);
      return;
    }
    if (f.error || f.data === undefined) {
      toast(`Could not open ${f.name}`, "error", f.error ?? "no data");
      return;
    }
    const file = toFileObject(f);
    const tab = await this.files.openFile(file);
    if (!tab || !/\.json$/i.test(f.name)) return; // a PNG is a source, not a file we write back to
    const comfy = isComfyUiWorkflow(JSON.parse(await file.text()));
    tab.file = { path: f.path, name: f.name, format: comfy ? "comfyui" : "latentgraph", savedKey: docKey(tab.doc) };
    this.workspace.dispatchEvent(new Event("change"));
  }

  /** Native Save dialog; the tab then saves to that file. */
  async saveAs(tab: Tab): Promise<void> {
    const format = tab.file?.format ?? "latentgraph";
    const suggested = tab.file?.name ?? `${displayName(tab.path)}.json`;
    const written = await this.api.save_dialog(suggested, this.files.activeText(format));
    if (!written) return;
    tab.file = { path: written.path, name: written.name, format, savedKey: docKey(tab.doc) };
    this.workspace.dispatchEvent(new Event("change"));
    toast(`Saved ${written.path}`, "success");
  }

  /** Save also writes the file the tab came from, in the format it had. */
  async writeBack(tab: Tab): Promise<void> {
    if (!tab.file) return;
    await this.api.write_file(tab.file.path, this.files.activeText(tab.file.format));
    tab.file.savedKey = docKey(tab.doc);
    this.workspace.dispatchEvent(new Event("change"));
  }
}
