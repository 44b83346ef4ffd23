/** The editor's keyboard shortcuts: one table from keys to the application's actions. */

/** What the shortcuts do; the application supplies each action. */
export interface ShortcutActions {
  queue(front: boolean): void;
  interrupt(): void;
  save(): void;
  open(): void;
  undo(): void;
  redo(): void;
  bypassSelected(): void;
  muteSelected(): void;
  groupSelected(): void;
  togglePanel(name: "library" | "workflows" | "queue"): void;
  fitView(): void;
  refreshDefs(): void;
  /** Whether a dialog of the editor's own has the keyboard (node search). */
  dialogOpen(): boolean;
}

export function installShortcuts(actions: ShortcutActions): void {
  window.addEventListener(
    "keydown",
    (e) => {
      const target = e.target as HTMLElement;
      const typing = target.closest("input, textarea, select, [contenteditable]") !== null;
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key === "Enter") {
        e.preventDefault();
        e.stopPropagation();
        if (e.altKey) actions.interrupt();
        else actions.queue(e.shiftKey);
        return;
      }
      if (mod && e.key.toLowerCase() === "s") {
        e.preventDefault();
        actions.save();
        return;
      }
      if (mod && e.key.toLowerCase() === "o") {
        e.preventDefault();
        actions.open();
        return;
      }
      if (typing || actions.dialogOpen() || document.querySelector(".modal-overlay, .graphdialog")) return;
      const key = e.key.toLowerCase();
      const modded = new Map<string, () => void>([
        ["y", () => actions.redo()],
        ["b", () => actions.bypassSelected()],
        ["m", () => actions.muteSelected()],
        ["g", () => actions.groupSelected()],
      ]);
      if (mod && key === "z") {
        e.preventDefault();
        if (e.shiftKey) actions.redo();
        else actions.undo();
      } else if (mod && modded.has(key)) {
        e.preventDefault();
        modded.get(key)!();
      } else if (!mod && !e.altKey) {
        if (key === "q") actions.togglePanel("queue");
        else if (key === "w") actions.togglePanel("workflows");
        else if (key === "n") actions.togglePanel("library");
        else if (key === ".") actions.fitView();
        else if (key === "r") actions.refreshDefs();
      }
    },
    true,
  );
}
