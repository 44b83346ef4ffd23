/** Canvas look: litegraph's global colours set once at start-up to our dark theme. */
import { LGraphCanvas, LiteGraph } from "@comfyorg/litegraph";
import { TYPE_COLORS, typeColor, typesCompatible } from "../model/types";

export const THEME = {
  background: "#16181d",
  grid: "#1f2229",
  nodeTitle: "#2b2f38",
  nodeBody: "#22252c",
  nodeText: "#d5d9e0",
  widgetBg: "#1a1c22",
  widgetOutline: "#3a3f4b",
  widgetText: "#d5d9e0",
  widgetSecondary: "#8a91a0",
  accent: "#5aa9ff",
  running: "#4caf50",
  error: "#ff5c5c",
  cached: "#8a91a0",
};

export const NODE_COLORS: Record<string, { color: string; bgcolor: string }> = {
  red: { color: "#5b2b2b", bgcolor: "#3d2222" },
  brown: { color: "#5a4330", bgcolor: "#3b2e22" },
  green: { color: "#2f4f34", bgcolor: "#223526" },
  blue: { color: "#2c4460", bgcolor: "#213043" },
  purple: { color: "#4a3461", bgcolor: "#332544" },
  yellow: { color: "#5f5426", bgcolor: "#3e381e" },
  cyan: { color: "#285a5a", bgcolor: "#1f3e3e" },
  black: { color: "#1b1b1b", bgcolor: "#111111" },
};

let applied = false;

/** Apply the theme and our link-compatibility rule to litegraph's globals (idempotent). */
export function applyTheme(): void {
  if (applied) return;
  applied = true;
  const lg = LiteGraph as unknown as Record<string, unknown>;
  lg.NODE_TITLE_COLOR = "#c9ced8";
  lg.NODE_SELECTED_TITLE_COLOR = "#ffffff";
  lg.NODE_TEXT_COLOR = THEME.nodeText;
  lg.NODE_DEFAULT_COLOR = THEME.nodeTitle;
  lg.NODE_DEFAULT_BGCOLOR = THEME.nodeBody;
  lg.NODE_DEFAULT_BOXCOLOR = "#666";
  lg.NODE_BOX_OUTLINE_COLOR = THEME.accent;
  lg.WIDGET_BGCOLOR = THEME.widgetBg;
  lg.WIDGET_OUTLINE_COLOR = THEME.widgetOutline;
  lg.WIDGET_TEXT_COLOR = THEME.widgetText;
  lg.WIDGET_SECONDARY_TEXT_COLOR = THEME.widgetSecondary;
  lg.LINK_COLOR = "#9aa5b8";
  lg.release_link_on_empty_shows_menu = false;
  lg.middle_click_slot_add_default_node = false;
  lg.ctrl_shift_v_paste_connect_unselected_outputs = true;
  lg.snaps_for_comfy = true;
  lg.alt_drag_do_clone_nodes = true;
  lg.highlight_selected_group = true;
  lg.isValidConnection = (a: unknown, b: unknown): boolean =>
    typesCompatible(a ? String(a) : "*", b ? String(b) : "*");
  for (const [type, color] of Object.entries(TYPE_COLORS)) {
    LGraphCanvas.link_type_colors[type] = color;
  }
}

/** Make sure a type (possibly one only a custom node uses) has its colour registered. */
export function ensureTypeColor(canvas: LGraphCanvas, type: string): void {
  if (!type || type === "*") return;
  const c = typeColor(type);
  LGraphCanvas.link_type_colors[type] = c;
  canvas.default_connection_color_byType[type] = c;
  canvas.default_connection_color_byTypeOff[type] = c;
}
