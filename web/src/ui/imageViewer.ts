/**
 * In-app image viewer for a run's images: arrows (buttons and keys) step through them, Escape or a
 * click on the backdrop closes, and a download link saves the file under its own name.
 */
import { h } from "./dom";

export interface ViewerImage {
  url: string;
  filename: string;
}

/** Open the viewer on `images[index]`; returns a function that closes it. */
export function openImageViewer(images: ViewerImage[], index: number): () => void {
  if (!images.length) return () => undefined;
  document.querySelector(".image-viewer")?.remove();
  let at = Math.min(Math.max(index, 0), images.length - 1);
  const img = h("img", { class: "viewer-image", alt: "" });
  const caption = h("span", { class: "viewer-caption" });
  const download = h("a", { class: "btn btn-small viewer-download", title: "Download" }, "Download");
  const prev = h("button", { class: "viewer-nav viewer-prev", title: "Previous (←)", "aria-label": "Previous image" }, "‹");
  const next = h("button", { class: "viewer-nav viewer-next", title: "Next (→)", "aria-label": "Next image" }, "›");
  const close = h("button", { class: "icon-btn viewer-close", title: "Close (Esc)", "aria-label": "Close" }, "✕");
  const overlay = h(
    "div",
    { class: "image-viewer", role: "dialog", "aria-modal": "true", tabindex: "-1" },
    h("div", { class: "viewer-bar" }, caption, download, close),
    prev,
    img,
    next,
  );
  const show = () => {
    const cur = images[at];
    img.src = cur.url;
    img.alt = cur.filename;
    caption.textContent = images.length > 1 ? `${cur.filename} (${at + 1} / ${images.length})` : cur.filename;
    download.setAttribute("href", cur.url);
    download.setAttribute("download", cur.filename);
    prev.toggleAttribute("disabled", images.length < 2);
    next.toggleAttribute("disabled", images.length < 2);
  };
  const step = (d: number) => {
    at = (at + d + images.length) % images.length;
    show();
  };
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") dispose();
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
    else return;
    e.preventDefault();
    e.stopPropagation();
  };
  const dispose = () => {
    document.removeEventListener("keydown", onKey, true);
    overlay.remove();
  };
  prev.addEventListener("click", () => step(-1));
  next.addEventListener("click", () => step(1));
  close.addEventListener("click", dispose);
  overlay.addEventListener("click", (e) => {
    if (e.target === overlay) dispose();
  });
  document.addEventListener("keydown", onKey, true);
  show();
  document.body.append(overlay);
  overlay.focus();
  return dispose;
}
