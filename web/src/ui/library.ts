/** Node library sidebar: categories as a collapsible tree, with a filter box. */
import type { NodeDef, NodeDefs } from "../model/nodedefs";
import { searchNodes } from "../model/search";
import { clear, h } from "./dom";

interface CategoryTree {
  children: Map<string, CategoryTree>;
  nodes: NodeDef[];
}

function buildTree(defs: Iterable<NodeDef>): CategoryTree {
  const root: CategoryTree = { children: new Map(), nodes: [] };
  for (const def of defs) {
    if (def.deprecated) continue;
    let cur = root;
    for (const part of def.category.split("/").filter(Boolean)) {
      let next = cur.children.get(part);
      if (!next) cur.children.set(part, (next = { children: new Map(), nodes: [] }));
      cur = next;
    }
    cur.nodes.push(def);
  }
  return root;
}

export class LibraryPanel {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private readonly filter: HTMLInputElement;
  private readonly open = new Set<string>();

  constructor(
    private readonly getDefs: () => NodeDefs,
    private readonly onAdd: (def: NodeDef) => void,
  ) {
    this.filter = h("input", { class: "panel-filter", placeholder: "Filter nodes…", spellcheck: "false" });
    this.filter.addEventListener("input", () => this.render());
    this.filter.addEventListener("keydown", (e) => e.stopPropagation());
    this.list = h("div", { class: "tree" });
    this.el = h("div", { class: "panel library-panel" }, h("div", { class: "panel-title" }, "Node library"), this.filter, this.list);
  }

  render(): void {
    clear(this.list);
    const q = this.filter.value.trim();
    if (q) {
      for (const { def } of searchNodes(this.getDefs().values(), q, {}, 80)) this.list.append(this.nodeRow(def, 0));
      return;
    }
    this.renderTree(buildTree(this.getDefs().values()), "", 0);
  }

  private renderTree(tree: CategoryTree, prefix: string, depth: number): void {
    const cats = [...tree.children.keys()].sort((a, b) => a.localeCompare(b));
    for (const name of cats) {
      const path = prefix ? `${prefix}/${name}` : name;
      const isOpen = this.open.has(path);
      const row = h(
        "div",
        { class: `tree-cat${isOpen ? " open" : ""}`, style: { paddingLeft: `${8 + depth * 14}px` }, dataset: { category: path } },
        h("span", { class: "chevron" }, isOpen ? "▾" : "▸"),
        name,
      );
      row.addEventListener("click", () => {
        if (isOpen) this.open.delete(path);
        else this.open.add(path);
        this.render();
      });
      this.list.append(row);
      if (isOpen) this.renderTree(tree.children.get(name)!, path, depth + 1);
    }
    for (const def of tree.nodes.sort((a, b) => a.displayName.localeCompare(b.displayName))) {
      this.list.append(this.nodeRow(def, depth));
    }
  }

  private nodeRow(def: NodeDef, depth: number): HTMLElement {
    const row = h(
      "div",
      { class: "tree-node", title: def.description || def.name, style: { paddingLeft: `${22 + depth * 14}px` }, dataset: { type: def.name }, draggable: "true" },
      def.displayName,
    );
    row.addEventListener("click", () => this.onAdd(def));
    row.addEventListener("dragstart", (e) => e.dataTransfer?.setData("application/x-latentgraph-node", def.name));
    return row;
  }
}
