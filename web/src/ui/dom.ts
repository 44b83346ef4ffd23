/** Tiny DOM helpers: element builder, toasts, dialogs and drop-down menus. */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, unknown> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    else if (k === "class") el.className = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v as Record<string, string>);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export type ToastKind = "info" | "success" | "error" | "warning";

/** Show a transient message in the corner; errors stay until dismissed. */
export function toast(message: string, kind: ToastKind = "info", detail?: string): HTMLElement {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div", { id: "toasts" });
    document.body.append(host);
  }
  const close = h("button", { class: "toast-close", title: "Dismiss", "aria-label": "Dismiss" }, "×");
  const el = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("div", { class: "toast-body" }, h("div", { class: "toast-title" }, message), detail ? h("div", { class: "toast-detail" }, detail) : null),
    close,
  );
  close.addEventListener("click", () => el.remove());
  host.append(el);
  if (kind !== "error") setTimeout(() => el.remove(), kind === "warning" ? 8000 : 4000);
  return el;
}

export function clear(el: HTMLElement): void {
  while (el.firstChild) el.firstChild.remove();
}

/** A modal prompt for a single line of text; resolves null on cancel. */
export function promptText(title: string, value: string): Promise<string | null> {
  return new Promise((resolve) => {
    const input = h("input", { class: "modal-input", value, spellcheck: "false" });
    const ok = h("button", { class: "btn btn-primary" }, "OK");
    const cancel = h("button", { class: "btn" }, "Cancel");
    const overlay = h(
      "div",
      { class: "modal-overlay" },
      h("div", { class: "modal", role: "dialog" }, h("div", { class: "modal-title" }, title), input, h("div", { class: "modal-actions" }, cancel, ok)),
    );
    const done = (v: string | null) => {
      overlay.remove();
      resolve(v);
    };
    ok.addEventListener("click", () => done(input.value.trim() || null));
    cancel.addEventListener("click", () => done(null));
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Enter") done(input.value.trim() || null);
      if (e.key === "Escape") done(null);
    });
    overlay.addEventListener("pointerdown", (e) => {
      if (e.target === overlay) done(null);
    });
    document.body.append(overlay);
    input.focus();
    input.select();
  });
}

export function confirmDialog(title: string, message: string, okLabel = "OK"): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = h("button", { class: "btn btn-danger" }, okLabel);
    const cancel = h("button", { class: "btn" }, "Cancel");
    const overlay = h(
      "div",
      { class: "modal-overlay" },
      h("div", { class: "modal", role: "dialog" }, h("div", { class: "modal-title" }, title), h("p", { class: "modal-text" }, message), h("div", { class: "modal-actions" }, cancel, ok)),
    );
    const done = (v: boolean) => {
      overlay.remove();
      resolve(v);
    };
    ok.addEventListener("click", () => done(true));
    cancel.addEventListener("click", () => done(false));
    document.body.append(overlay);
    ok.focus();
  });
}

/** A menu entry: its label, what it does and an optional shortcut shown beside it. */
export type MenuItem = [label: string, run: () => void, key?: string];

/** A button that drops down a list of actions; any click elsewhere closes it. */
export function dropdownMenu(id: string, label: string, items: MenuItem[]): HTMLElement {
  const list = h("div", { class: "menu-list", role: "menu" });
  for (const [text, run, key] of items) {
    const b = h("button", { class: "menu-item", role: "menuitem" }, h("span", {}, text), key ? h("kbd", {}, key) : null);
    b.addEventListener("click", () => {
      list.classList.remove("open");
      run();
    });
    list.append(b);
  }
  const btn = h("button", { class: "btn menu-btn", id }, label);
  btn.addEventListener("click", (e) => {
    e.stopPropagation();
    list.classList.toggle("open");
  });
  document.addEventListener("click", () => list.classList.remove("open"));
  return h("div", { class: "menu" }, btn, list);
}
