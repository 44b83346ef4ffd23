/**
 * Open workflows (tabs): which document each tab holds, its undo log, its file under the user's
 * workflows/ folder, autosave to the server and the session saved so a reload loses nothing.
 */
import { ApiClient, type ImageRef } from "../api/client";
import { CommandLog } from "../model/commands";
import { cloneDoc, stableStringify, validateWorkflow, type WorkflowDoc } from "../model/workflow";

export interface Tab {
  id: string;
  /** File path relative to the user folder, e.g. "workflows/portrait.json". */
  path: string;
  doc: WorkflowDoc;
  log: CommandLog;
  dirty: boolean;
  savedKey: string;
  /** Last run's images per node id, re-shown when the tab is activated again. */
  outputs: Record<string, ImageRef[]>;
  /** Desktop mode: the file on disk this tab was opened from or saved as (ui/desktop.ts). */
  file?: DiskFile;
}

export interface DiskFile {
  path: string;
  name: string;
  format: "latentgraph" | "comfyui";
  /** docKey of the document last written to the file. */
  savedKey: string;
}

const SESSION_KEY = "lg.session.v1";
const SESSION_FILE = "latentgraph.session.json";

interface SessionData {
  active: string | null;
  tabs: Array<{ id: string; path: string; doc: WorkflowDoc; dirty: boolean }>;
}

export function displayName(path: string): string {
  const base = path.split("/").pop() ?? path;
  return base.replace(/\.json$/i, "");
}

export function sanitizeName(name: string): string {
  const cleaned = name.replace(/[\\/:*?"<>|\x00-\x1f]+/g, "_").replace(/^\.+/, "").trim();
  return cleaned || "Untitled";
}

export class Workspace extends EventTarget {
  tabs: Tab[] = [];
  activeId: string | null = null;
  private saveTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private sessionTimer: ReturnType<typeof setTimeout> | null = null;
  autosaveDelayMs = 800;
  /** Workflow files known to exist on the server (null until first listed). */
  knownFiles: Set<string> | null = null;

  constructor(
    private readonly api: ApiClient,
    /** Turns a document into the saved file's text (the shared latentgraph.workflow format). */
    private readonly serialize: (doc: WorkflowDoc) => string,
  ) {
    super();
  }

  get active(): Tab | undefined {
    return this.tabs.find((t) => t.id === this.activeId);
  }

  private emit(): void {
    this.dispatchEvent(new Event("change"));
  }

  /** A path under workflows/ not used by an open tab or an existing file. */
  async uniquePath(name: string, existing?: string[]): Promise<string> {
    // The server's file list is fetched once, then kept current by our own saves.
    if (!existing && !this.knownFiles) {
      this.knownFiles = new Set((await this.api.listWorkflows().catch(() => [])).map((f) => `workflows/${f.path}`));
    }
    const files = existing ?? [...(this.knownFiles ?? [])];
    const taken = new Set([...files, ...this.tabs.map((t) => t.path)].map((p) => p.toLowerCase()));
    const base = sanitizeName(name);
    for (let i = 1; ; i++) {
      const candidate = `workflows/${i === 1 ? base : `${base} (${i})`}.json`;
      if (!taken.has(candidate.toLowerCase())) return candidate;
    }
  }

  addTab(doc: WorkflowDoc, path: string, saved: boolean): Tab {
    const tab: Tab = {
      id: crypto.randomUUID(),
      path,
      doc: cloneDoc(doc),
      log: new CommandLog(),
      dirty: !saved,
      savedKey: saved ? docKey(doc) : "",
      outputs: {},
    };
    this.tabs.push(tab);
    if (!saved) this.scheduleSave(tab);
    this.scheduleSession();
    this.emit();
    return tab;
  }

  findByPath(path: string): Tab | undefined {
    return this.tabs.find((t) => t.path === path);
  }

  /** Record the active tab's current document (after an edit); marks dirty and autosaves. */
  updateDoc(tab: Tab, doc: WorkflowDoc): void {
    tab.doc = doc;
    const dirty = docKey(doc) !== tab.savedKey;
    const changed = dirty !== tab.dirty;
    tab.dirty = dirty;
    if (dirty) this.scheduleSave(tab);
    this.scheduleSession();
    if (changed) this.emit();
  }

  /** View-only change (pan/zoom): remembered in the session, not worth a file write. */
  updateView(tab: Tab, doc: WorkflowDoc): void {
    tab.doc = doc;
    this.scheduleSession();
  }

  scheduleSave(tab: Tab): void {
    const prev = this.saveTimers.get(tab.id);
    if (prev) clearTimeout(prev);
    this.saveTimers.set(
      tab.id,
      setTimeout(() => {
        this.saveTimers.delete(tab.id);
        void this.save(tab).catch(() => undefined);
      }, this.autosaveDelayMs),
    );
  }

  /** Write a tab's document to its file now. */
  async save(tab: Tab): Promise<void> {
    const doc = tab.doc;
    const key = docKey(doc);
    await this.api.writeUserFile(tab.path, this.serialize(doc));
    this.knownFiles?.add(tab.path);
    tab.savedKey = key;
    tab.dirty = docKey(tab.doc) !== key;
    this.scheduleSession();
    this.emit();
  }

  /** Flush every pending autosave (used before unload and by tests). */
  async flush(): Promise<void> {
    const pending = [...this.saveTimers.keys()];
    for (const id of pending) {
      clearTimeout(this.saveTimers.get(id)!);
      this.saveTimers.delete(id);
    }
    await Promise.all(this.tabs.filter((t) => t.dirty || pending.includes(t.id)).map((t) => this.save(t).catch(() => undefined)));
    this.writeSessionNow();
  }

  async rename(tab: Tab, name: string): Promise<void> {
    const path = await this.uniquePath(name);
    const old = tab.path;
    tab.path = path;
    await this.save(tab);
    if (old !== path) {
      await this.api.deleteUserFile(old).catch(() => undefined);
      this.knownFiles?.delete(old);
    }
    this.emit();
  }

  close(tab: Tab): void {
    const i = this.tabs.indexOf(tab);
    if (i < 0) return;
    const t = this.saveTimers.get(tab.id);
    if (t) {
      clearTimeout(t);
      this.saveTimers.delete(tab.id);
      void this.save(tab).catch(() => undefined);
    }
    this.tabs.splice(i, 1);
    if (this.activeId === tab.id) this.activeId = this.tabs[Math.min(i, this.tabs.length - 1)]?.id ?? null;
    this.scheduleSession();
    this.emit();
  }

  // ------------------------------------------------------------------ session

  scheduleSession(): void {
    if (this.sessionTimer) clearTimeout(this.sessionTimer);
    this.sessionTimer = setTimeout(() => this.writeSessionNow(), 300);
  }

  private sessionData(): SessionData {
    return {
      active: this.activeId,
      tabs: this.tabs.map((t) => ({ id: t.id, path: t.path, doc: t.doc, dirty: t.dirty })),
    };
  }

  writeSessionNow(): void {
    if (this.sessionTimer) {
      clearTimeout(this.sessionTimer);
      this.sessionTimer = null;
    }
    const data = this.sessionData();
    try {
      localStorage.setItem(SESSION_KEY, JSON.stringify(data));
    } catch {
      // Quota exceeded: the server copy below still has everything.
    }
    void this.api.writeUserFile(SESSION_FILE, JSON.stringify(data)).catch(() => undefined);
  }

  /** Restore tabs from the last session (browser copy first, then the server's). */
  async restore(): Promise<boolean> {
    let data: SessionData | null = null;
    try {
      const raw = localStorage.getItem(SESSION_KEY);
      if (raw) data = JSON.parse(raw) as SessionData;
    } catch {
      data = null;
    }
    if (!data?.tabs?.length) {
      try {
        data = JSON.parse(await this.api.readUserFile(SESSION_FILE)) as SessionData;
      } catch {
        data = null;
      }
    }
    if (!data?.tabs?.length) return false;
    for (const t of data.tabs) {
      let doc: WorkflowDoc;
      try {
        doc = validateWorkflow(t.doc);
      } catch {
        continue;
      }
      const tab = this.addTab(doc, t.path, !t.dirty);
      tab.id = t.id;
      if (t.dirty) {
        tab.savedKey = "";
        this.scheduleSave(tab);
      }
    }
    this.activeId = this.tabs.find((t) => t.id === data!.active)?.id ?? this.tabs[0]?.id ?? null;
    this.emit();
    return this.tabs.length > 0;
  }
}

/** The part of a document that counts as content (view position excluded). */
export function docKey(doc: WorkflowDoc): string {
  return stableStringify({ ...doc, view: undefined });
}
