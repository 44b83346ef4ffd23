/**
 * The one place the editor talks to the server: ComfyUI's REST routes (under /api) and the
 * /ws websocket, with typed results and structured errors.
 */
import type { ObjectInfo } from "../model/nodedefs";
import type { JobLg } from "../model/jobInfo";
import type { ApiPrompt } from "../model/prompt";

export interface ApiErrorBody {
  type: string;
  message: string;
  details?: string;
  extra_info?: Record<string, unknown>;
}

export interface NodeErrors {
  [nodeId: string]: { errors: ApiErrorBody[]; dependent_outputs?: string[]; class_type?: string };
}

/** A request the server refused; `body` holds ComfyUI's {error, node_errors} when present. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: { error?: ApiErrorBody | string; node_errors?: NodeErrors } | null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface QueueResult {
  prompt_id: string;
  number: number;
  node_errors: NodeErrors;
}

/** [number, prompt_id, prompt, extra_data, outputs_to_execute] */
export type QueueItem = [number, string, ApiPrompt, Record<string, unknown>, string[]];

export interface QueueState {
  queue_running: QueueItem[];
  queue_pending: QueueItem[];
}

export interface ImageRef {
  filename: string;
  subfolder?: string;
  type?: string;
}

export interface HistoryEntry {
  prompt: QueueItem;
  outputs: Record<string, { images?: ImageRef[]; [k: string]: unknown }>;
  status?: { status_str?: string; completed?: boolean; messages?: Array<[string, Record<string, unknown>]> };
  /** Our extra block: state, run report and timings (server/API.md). */
  lg?: JobLg;
}

export type History = Record<string, HistoryEntry>;

export interface PreviewFrame {
  blob: Blob;
  nodeId?: string;
  promptId?: string;
}

export type ServerMessage = { type: string; data: Record<string, unknown> };

export interface UserFile {
  path: string;
  size?: number;
  modified?: number;
}

export class ApiClient extends EventTarget {
  private socket: WebSocket | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  clientId: string;
  connected = false;

  constructor(private readonly base = "") {
    super();
    this.clientId = sessionStorage.getItem("lg.clientId") ?? crypto.randomUUID().replace(/-/g, "");
    sessionStorage.setItem("lg.clientId", this.clientId);
  }

  url(path: string): string {
    return `${this.base}/api${path}`;
  }

  async fetchJson<T>(path: string, init?: RequestInit): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url(path), init);
    } catch (e) {
      throw new ApiError(`cannot reach the server (${String(e)})`, 0, null);
    }
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) {
      const b = (body ?? null) as ApiError["body"];
      const err = b?.error;
      const msg = typeof err === "string" ? err : err?.message ?? (text.slice(0, 200) || res.statusText);
      throw new ApiError(msg, res.status, b);
    }
    return body as T;
  }

  private postJson<T>(path: string, data: unknown): Promise<T> {
    return this.fetchJson<T>(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data),
    });
  }

  getObjectInfo(): Promise<ObjectInfo> {
    return this.fetchJson<ObjectInfo>("/object_info");
  }

  /** Queue a prompt; choosing `promptId` here lets run events be matched before the reply. */
  queuePrompt(prompt: ApiPrompt, extra: Record<string, unknown>, front = false, promptId?: string): Promise<QueueResult> {
    const body: Record<string, unknown> = { client_id: this.clientId, prompt, extra_data: extra };
    if (promptId) body.prompt_id = promptId;
    if (front) body.front = true;
    return this.postJson<QueueResult>("/prompt", body);
  }

  getQueue(): Promise<QueueState> {
    return this.fetchJson<QueueState>("/queue");
  }

  deleteFromQueue(ids: string[]): Promise<unknown> {
    return this.postJson("/queue", { delete: ids });
  }

  clearQueue(): Promise<unknown> {
    return this.postJson("/queue", { clear: true });
  }

  getHistory(maxItems = 50): Promise<History> {
    return this.fetchJson<History>(`/history?max_items=${maxItems}`);
  }

  deleteHistory(ids: string[]): Promise<unknown> {
    return this.postJson("/history", { delete: ids });
  }

  clearHistory(): Promise<unknown> {
    return this.postJson("/history", { clear: true });
  }

  interrupt(promptId?: string): Promise<unknown> {
    return this.postJson("/interrupt", promptId ? { prompt_id: promptId } : {});
  }

  /** Cancel one job: pending ones leave the queue, the running one is interrupted. */
  async cancel(promptId: string, running: boolean): Promise<void> {
    try {
      await this.postJson(`/lg/jobs/${encodeURIComponent(promptId)}/cancel`, {});
      return;
    } catch (e) {
      if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 405)) throw e;
    }
    if (running) await this.interrupt(promptId);
    else await this.deleteFromQueue([promptId]);
  }

  /** Move a pending job: lower priority numbers run first (our /api/lg extra). */
  setPriority(promptId: string, priority: number): Promise<unknown> {
    return this.postJson(`/lg/jobs/${encodeURIComponent(promptId)}/priority`, { priority });
  }

  async uploadImage(file: Blob, name: string, overwrite = false): Promise<ImageRef> {
    const form = new FormData();
    form.append("image", file, name);
    form.append("type", "input");
    if (overwrite) form.append("overwrite", "true");
    return this.fetchJson<{ name: string; subfolder: string; type: string }>("/upload/image", {
      method: "POST",
      body: form,
    }).then((r) => ({ filename: r.name, subfolder: r.subfolder, type: r.type }));
  }

  viewUrl(ref: ImageRef, preview = false): string {
    const q = new URLSearchParams({ filename: ref.filename, type: ref.type ?? "output", subfolder: ref.subfolder ?? "" });
    if (preview) q.set("preview", "webp;90");
    return this.url(`/view?${q.toString()}`);
  }

  /** Workflow files saved under the user's workflows/ folder. */
  async listWorkflows(): Promise<UserFile[]> {
    try {
      const list = await this.fetchJson<Array<string | { path: string; size?: number; modified?: number }>>(
        "/userdata?dir=workflows&recurse=true&full_info=true",
      );
      return list
        .map((f) => (typeof f === "string" ? { path: f } : f))
        .filter((f) => f.path.endsWith(".json"))
        .sort((a, b) => a.path.localeCompare(b.path));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return [];
      throw e;
    }
  }

  async readUserFile(path: string): Promise<string> {
    const res = await fetch(this.url(`/userdata/${encodeURIComponent(path)}`));
    if (!res.ok) throw new ApiError(`cannot read ${path}: ${res.status} ${res.statusText}`, res.status, null);
    return res.text();
  }

  writeUserFile(path: string, content: string, overwrite = true): Promise<unknown> {
    return this.fetchJson(`/userdata/${encodeURIComponent(path)}?overwrite=${overwrite}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: content,
    });
  }

  async deleteUserFile(path: string): Promise<void> {
    const res = await fetch(this.url(`/userdata/${encodeURIComponent(path)}`), { method: "DELETE" });
    if (!res.ok && res.status !== 404) throw new ApiError(`cannot delete ${path}`, res.status, null);
  }

  moveUserFile(from: string, to: string): Promise<unknown> {
    return this.fetchJson(`/userdata/${encodeURIComponent(from)}/move/${encodeURIComponent(to)}?overwrite=true`, {
      method: "POST",
    });
  }

  // ---------------------------------------------------------------- websocket

  connect(): void {
    this.closed = false;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const host = this.base ? new URL(this.base, location.href).host : location.host;
    const ws = new WebSocket(`${proto}//${host}/ws?clientId=${encodeURIComponent(this.clientId)}`);
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "feature_flags", data: { supports_preview_metadata: true, lg_events: true } }));
      this.connected = true;
      this.dispatchEvent(new CustomEvent("connection", { detail: true }));
    });
    ws.addEventListener("message", (ev) => this.onMessage(ev));
    ws.addEventListener("close", () => {
      if (this.socket !== ws) return;
      this.connected = false;
      this.dispatchEvent(new CustomEvent("connection", { detail: false }));
      if (!this.closed) this.reconnectTimer = setTimeout(() => this.connect(), 1000);
    });
  }

  disconnect(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.socket?.close();
    this.socket = null;
  }

  private onMessage(ev: MessageEvent): void {
    if (typeof ev.data === "string") {
      let msg: ServerMessage;
      try {
        msg = JSON.parse(ev.data) as ServerMessage;
      } catch {
        return;
      }
      if (msg.type === "status" && typeof msg.data?.sid === "string") this.clientId = msg.data.sid;
      this.dispatchEvent(new CustomEvent("message", { detail: msg }));
      return;
    }
    const frame = parseBinaryFrame(ev.data as ArrayBuffer);
    if (frame) this.dispatchEvent(new CustomEvent("preview", { detail: frame }));
  }
}

/** Decode ComfyUI's binary websocket frames carrying sampler previews (event types 1 and 4). */
export function parseBinaryFrame(buf: ArrayBuffer): PreviewFrame | null {
  if (buf.byteLength < 8) return null;
  const view = new DataView(buf);
  const event = view.getUint32(0);
  if (event === 1) {
    const imageType = view.getUint32(4);
    const mime = imageType === 2 ? "image/png" : "image/jpeg";
    return { blob: new Blob([buf.slice(8)], { type: mime }) };
  }
  if (event === 4) {
    const len = view.getUint32(4);
    if (8 + len > buf.byteLength) return null;
    let meta: Record<string, unknown> = {};
    try {
      meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len))) as Record<string, unknown>;
    } catch {
      return null;
    }
    const mime = typeof meta.image_type === "string" ? meta.image_type : "image/jpeg";
    return {
      blob: new Blob([buf.slice(8 + len)], { type: mime }),
      nodeId: meta.node_id != null ? String(meta.node_id) : undefined,
      promptId: meta.prompt_id != null ? String(meta.prompt_id) : undefined,
    };
  }
  return null;
}
