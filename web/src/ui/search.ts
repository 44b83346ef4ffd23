/** The node search dialog: fuzzy match, keyboard navigation, optional socket-type filter. */
import type { NodeDef, NodeDefs } from "../model/nodedefs";
import { type SearchFilter, searchNodes } from "../model/search";
import { typeColor } from "../model/types";
import { clear, h } from "./dom";

export interface SearchOptions {
  screen: [number, number];
  filter?: SearchFilter;
  filterLabel?: string;
  onPick(def: NodeDef): void;
  onCancel?(): void;
}

export class SearchDialog {
  private root: HTMLElement | null = null;

  constructor(private readonly getDefs: () => NodeDefs) {}

  get isOpen(): boolean {
    return this.root !== null;
  }

  close(): void {
    this.root?.remove();
    this.root = null;
  }

  open(opts: SearchOptions): void {
    this.close();
    const input = h("input", { class: "search-input", placeholder: "Search nodes…", spellcheck: "false", "aria-label": "Search nodes" });
    const list = h("div", { class: "search-results", role: "listbox" });
    const chip = opts.filterLabel ? h("div", { class: "search-filter" }, opts.filterLabel) : null;
    const box = h("div", { class: "search-dialog", role: "dialog" }, h("div", { class: "search-head" }, input, chip), list);
    const overlay = h("div", { class: "search-overlay" }, box);
    const [x, y] = opts.screen;
    box.style.left = `${Math.max(8, Math.min(x - 20, window.innerWidth - 520))}px`;
    box.style.top = `${Math.max(8, Math.min(y - 20, window.innerHeight - 460))}px`;
    let active = 0;
    let hits: NodeDef[] = [];
    let finished = false;
    const finish = (def: NodeDef | null) => {
      if (finished) return;
      finished = true;
      this.close();
      if (def) opts.onPick(def);
      else opts.onCancel?.();
    };
    const render = () => {
      hits = searchNodes(this.getDefs().values(), input.value, opts.filter ?? {}, 60).map((x) => x.def);
      active = Math.min(active, Math.max(0, hits.length - 1));
      clear(list);
      if (!hits.length) list.append(h("div", { class: "search-empty" }, "No matching nodes"));
      hits.forEach((def, i) => {
        const types = h(
          "span",
          { class: "search-types" },
          ...def.outputs.slice(0, 3).map((o) => h("span", { class: "type-pill", style: { borderColor: typeColor(o.type), color: typeColor(o.type) } }, o.type)),
        );
        const row = h(
          "div",
          { class: `search-row${i === active ? " active" : ""}`, role: "option", dataset: { type: def.name } },
          h("div", { class: "search-main" }, h("span", { class: "search-name" }, def.displayName), h("span", { class: "search-cat" }, def.category)),
          def.description ? h("div", { class: "search-desc" }, def.description) : null,
          types,
        );
        row.addEventListener("pointerdown", (e) => {
          e.preventDefault();
          finish(def);
        });
        row.addEventListener("mousemove", () => {
          if (active !== i) {
            active = i;
            list.querySelectorAll(".search-row").forEach((r, k) => r.classList.toggle("active", k === i));
          }
        });
        list.append(row);
      });
    };
    input.addEventListener("input", () => {
      active = 0;
      render();
    });
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "ArrowDown") {
        active = Math.min(hits.length - 1, active + 1);
        render();
        list.querySelector(".active")?.scrollIntoView({ block: "nearest" });
        e.preventDefault();
      } else if (e.key === "ArrowUp") {
        active = Math.max(0, active - 1);
        render();
        list.querySelector(".active")?.scrollIntoView({ block: "nearest" });
        e.preventDefault();
      } else if (e.key === "Enter") {
        finish(hits[active] ?? null);
      } else if (e.key === "Escape") {
        finish(null);
      }
    });
    overlay.addEventListener("pointerdown", (e) => {
      if (e.target === overlay) finish(null);
    });
    document.body.append(overlay);
    this.root = overlay;
    render();
    input.focus();
  }
}
