/** Queue panel: the running job with its progress, pending jobs (cancel, reorder) and history. */
import type { ApiClient, History, HistoryEntry, ImageRef, QueueItem, QueueState } from "../api/client";
import type { ApiPrompt } from "../model/prompt";
import { jobMeta, jobState } from "../model/jobInfo";
import { summarize } from "../model/runReport";
import { clear, h, toast } from "./dom";
import { openImageViewer } from "./imageViewer";

export interface QueueActions {
  loadFromHistory(entry: HistoryEntry, promptId: string): void;
  /** Title of the tab/workflow a prompt came from, when known. */
  labelFor(promptId: string, item: QueueItem): string;
}

/** Seeds that ran, for display: "KSampler seed 1234". */
export function usedSeeds(prompt: ApiPrompt): string[] {
  const out: string[] = [];
  for (const node of Object.values(prompt ?? {})) {
    for (const name of ["seed", "noise_seed"]) {
      const v = node.inputs?.[name];
      if (typeof v === "number") out.push(`${name} ${v}`);
    }
  }
  return out;
}

export class QueuePanel {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private queue: QueueState = { queue_running: [], queue_pending: [] };
  private history: History = {};
  private progress = new Map<string, number>();
  private refreshing: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly api: ApiClient,
    private readonly actions: QueueActions,
  ) {
    this.body = h("div", { class: "queue-body" });
    const clearBtn = h("button", { class: "icon-btn", title: "Clear history" }, "Clear");
    clearBtn.addEventListener("click", async () => {
      await this.api.clearHistory().catch((e) => toast("Could not clear history", "error", String(e)));
      void this.refresh();
    });
    this.el = h("div", { class: "panel queue-panel" }, h("div", { class: "panel-title" }, "Queue", clearBtn), this.body);
  }

  setProgress(promptId: string, fraction: number): void {
    this.progress.set(promptId, fraction);
    const bar = this.body.querySelector<HTMLElement>(`[data-prompt-id="${CSS.escape(promptId)}"] .job-progress > div`);
    if (bar) bar.style.width = `${Math.round(fraction * 100)}%`;
  }

  get pendingCount(): number {
    return this.queue.queue_pending.length + this.queue.queue_running.length;
  }

  /** Re-read queue and history; calls arriving during a refresh coalesce into one more. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        const [queue, history] = await Promise.all([this.api.getQueue(), this.api.getHistory(40)]);
        this.queue = queue;
        this.history = history;
        this.render();
      } catch {
        // The status bar reports a lost connection; keep the last known state.
      } finally {
        this.refreshing = null;
        if (this.again) {
          this.again = false;
          void this.refresh();
        }
      }
    })();
    return this.refreshing;
  }

  render(): void {
    clear(this.body);
    const running = this.queue.queue_running;
    const pending = [...this.queue.queue_pending].sort((a, b) => a[0] - b[0]);
    this.body.append(h("div", { class: "queue-section" }, `Running (${running.length})`));
    if (!running.length) this.body.append(h("div", { class: "empty" }, "Nothing running"));
    for (const item of running) this.body.append(this.jobRow(item, "running"));
    this.body.append(h("div", { class: "queue-section" }, `Pending (${pending.length})`));
    if (!pending.length) this.body.append(h("div", { class: "empty" }, "Queue is empty"));
    pending.forEach((item, i) => this.body.append(this.jobRow(item, "pending", pending, i)));
    const entries = Object.entries(this.history).reverse();
    this.body.append(h("div", { class: "queue-section" }, `History (${entries.length})`));
    if (!entries.length) this.body.append(h("div", { class: "empty" }, "No finished jobs"));
    for (const [id, entry] of entries) this.body.append(this.historyRow(id, entry));
  }

  private jobRow(item: QueueItem, state: "running" | "pending", pending: QueueItem[] = [], index = 0): HTMLElement {
    const [, promptId] = item;
    const cancel = h("button", { class: "icon-btn danger job-cancel", title: state === "running" ? "Stop this job" : "Remove from queue" }, "✕");
    cancel.addEventListener("click", async () => {
      cancel.setAttribute("disabled", "");
      try {
        await this.api.cancel(promptId, state === "running");
        toast(state === "running" ? "Stopping the running job" : "Removed from queue", "info");
      } catch (e) {
        toast("Could not cancel", "error", String(e));
      }
      void this.refresh();
    });
    const actions = h("span", { class: "job-actions" });
    if (state === "pending") {
      const up = h("button", { class: "icon-btn job-up", title: "Run earlier", disabled: index === 0 }, "▲");
      const down = h("button", { class: "icon-btn job-down", title: "Run later", disabled: index === pending.length - 1 }, "▼");
      up.addEventListener("click", () => void this.move(pending, index, -1));
      down.addEventListener("click", () => void this.move(pending, index, 1));
      actions.append(up, down);
    }
    actions.append(cancel);
    const seeds = usedSeeds(item[2]);
    const fraction = this.progress.get(promptId) ?? 0;
    return h(
      "div",
      { class: `job job-${state}`, dataset: { promptId } },
      h("div", { class: "job-head" }, h("span", { class: "job-title" }, this.actions.labelFor(promptId, item)), actions),
      h("div", { class: "job-meta" }, `#${item[0]}`, seeds.length ? ` · ${seeds.join(", ")}` : ""),
      state === "running" ? h("div", { class: "job-progress" }, h("div", { style: { width: `${Math.round(fraction * 100)}%` } })) : null,
    );
  }

  private async move(pending: QueueItem[], index: number, dir: -1 | 1): Promise<void> {
    const target = index + dir;
    if (target < 0 || target >= pending.length) return;
    const neighbour = pending[target][0];
    const beyond = pending[target + dir]?.[0];
    const priority = beyond === undefined ? neighbour + dir : (neighbour + beyond) / 2;
    try {
      await this.api.setPriority(pending[index][1], priority);
    } catch (e) {
      toast("Could not reorder the queue", "error", String(e));
    }
    void this.refresh();
  }

  private historyRow(promptId: string, entry: HistoryEntry): HTMLElement {
    const status = jobState(entry.lg, entry.status);
    const images: ImageRef[] = [];
    for (const out of Object.values(entry.outputs ?? {})) for (const img of out.images ?? []) images.push(img);
    const load = h("button", { class: "btn btn-small", title: "Open this run's workflow in a new tab" }, "Load workflow");
    load.addEventListener("click", () => this.actions.loadFromHistory(entry, promptId));
    const del = h("button", { class: "icon-btn danger", title: "Delete from history" }, "✕");
    del.addEventListener("click", async () => {
      await this.api.deleteHistory([promptId]).catch(() => undefined);
      void this.refresh();
    });
    const seeds = usedSeeds(entry.prompt?.[2]);
    const shown = images.map((img) => ({ url: this.api.viewUrl(img), filename: img.filename }));
    const thumbs = h(
      "div",
      { class: "thumbs" },
      ...shown.slice(0, 8).map((img, i) => {
        const b = h("button", { class: "thumb", title: img.filename }, h("img", { src: img.url, loading: "lazy", alt: img.filename }));
        b.addEventListener("click", () => openImageViewer(shown, i));
        return b;
      }),
    );
    const meta = [...jobMeta(entry.prompt?.[0], entry.lg), ...seeds].join(" · ");
    const report = summarize(entry.lg?.run_report);
    const error = entry.status?.messages?.find((m) => m[0] === "execution_error")?.[1];
    return h(
      "div",
      { class: `job job-history status-${status}`, dataset: { promptId } },
      h(
        "div",
        { class: "job-head" },
        h("span", { class: "job-title" }, this.actions.labelFor(promptId, entry.prompt)),
        h("span", { class: `status-pill ${status}` }, status),
        del,
      ),
      h("div", { class: "job-meta" }, meta),
      report ? h("div", { class: "job-report", title: "Why nodes ran or were cached" }, report) : null,
      error ? h("div", { class: "job-error" }, String(error.exception_message ?? "error")) : null,
      !error && status !== "success" && entry.lg?.reason ? h("div", { class: "job-reason" }, entry.lg.reason) : null,
      images.length ? thumbs : null,
      h("div", { class: "job-foot" }, load),
    );
  }
}
