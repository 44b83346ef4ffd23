/** Workflow browser: the saved files under the user's workflows/ folder. */
import type { ApiClient, UserFile } from "../api/client";
import { clear, confirmDialog, h, promptText, toast } from "./dom";
import { displayName } from "./workspace";

export interface WorkflowActions {
  open(path: string): void;
  renamed(from: string, to: string): void;
  deleted(path: string): void;
}

export class WorkflowsPanel {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private readonly filter: HTMLInputElement;
  private files: UserFile[] = [];
  /** Told the current file list whenever it is fetched (keeps name suggestions unique). */
  onListed?: (paths: string[]) => void;

  constructor(
    private readonly api: ApiClient,
    private readonly actions: WorkflowActions,
  ) {
    this.filter = h("input", { class: "panel-filter", placeholder: "Filter workflows…", spellcheck: "false" });
    this.filter.addEventListener("input", () => this.render());
    this.filter.addEventListener("keydown", (e) => e.stopPropagation());
    this.list = h("div", { class: "file-list" });
    const refresh = h("button", { class: "icon-btn", title: "Refresh" }, "⟳");
    refresh.addEventListener("click", () => void this.refresh());
    this.el = h(
      "div",
      { class: "panel workflows-panel" },
      h("div", { class: "panel-title" }, "Workflows", refresh),
      this.filter,
      this.list,
    );
  }

  async refresh(): Promise<void> {
    try {
      this.files = await this.api.listWorkflows();
      this.onListed?.(this.files.map((f) => `workflows/${f.path}`));
    } catch (e) {
      toast("Could not list workflows", "error", String(e));
      this.files = [];
    }
    this.render();
  }

  render(): void {
    clear(this.list);
    const q = this.filter.value.trim().toLowerCase();
    const files = this.files.filter((f) => !q || f.path.toLowerCase().includes(q));
    if (!files.length) {
      this.list.append(h("div", { class: "empty" }, q ? "No matching workflows" : "No saved workflows yet"));
      return;
    }
    for (const f of files) {
      const path = `workflows/${f.path}`;
      const rename = h("button", { class: "icon-btn", title: "Rename" }, "✎");
      const del = h("button", { class: "icon-btn danger", title: "Delete" }, "🗑");
      const row = h(
        "div",
        { class: "file-row", dataset: { path } },
        h("span", { class: "file-name" }, displayName(f.path)),
        f.modified ? h("span", { class: "file-meta" }, new Date(f.modified * 1000).toLocaleString()) : null,
        h("span", { class: "file-actions" }, rename, del),
      );
      row.addEventListener("click", (e) => {
        if ((e.target as HTMLElement).closest(".icon-btn")) return;
        this.actions.open(path);
      });
      rename.addEventListener("click", async () => {
        const name = await promptText("Rename workflow", displayName(f.path));
        if (!name) return;
        const to = `workflows/${name.replace(/[\\/:*?"<>|]+/g, "_")}.json`;
        try {
          await this.api.moveUserFile(path, to);
          this.actions.renamed(path, to);
          await this.refresh();
        } catch (err) {
          toast("Rename failed", "error", String(err));
        }
      });
      del.addEventListener("click", async () => {
        if (!(await confirmDialog("Delete workflow", `Delete "${displayName(f.path)}"? This cannot be undone.`, "Delete"))) return;
        try {
          await this.api.deleteUserFile(path);
          this.actions.deleted(path);
          await this.refresh();
        } catch (err) {
          toast("Delete failed", "error", String(err));
        }
      });
      this.list.append(row);
    }
  }
}
