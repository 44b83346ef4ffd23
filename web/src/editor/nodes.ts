/**
 * litegraph node classes built from our NodeDefs: sockets, widgets (with an input socket each so
 * a link can replace the value), seed controls, multiline prompts, image upload, placeholders for
 * unknown types, and the editor-only Reroute and Note nodes.
 */
import { LGraphNode, LiteGraph } from "@comfyorg/litegraph";
import type { IBaseWidget } from "@comfyorg/litegraph/dist/types/widgets";
import type { InputDef, NodeDef } from "../model/nodedefs";
import { NOTE_TYPE, REROUTE_TYPE } from "../model/prompt";
import { DEFAULT_SEED_CONTROL } from "../model/seed";
import { type NodeDoc, SEED_CONTROLS } from "../model/workflow";
import type { NodeReport } from "../model/runReport";
import { THEME } from "./theme";

/** Transient per-node run state drawn on the canvas (never saved). */
export interface NodeRuntime {
  progress?: number;
  running?: boolean;
  cached?: boolean;
  /** Why the node ran or was cached in the last run (lg.node_report). */
  report?: NodeReport;
  error?: string;
  inputErrors: Map<string, string>;
  images: HTMLImageElement[];
  preview?: HTMLImageElement;
}

/** Our additions to litegraph's node. */
export interface LgNode extends LGraphNode {
  lgDef?: NodeDef;
  /** For placeholders: the document node, re-emitted unchanged apart from layout. */
  lgPlaceholder?: NodeDoc;
  /** Values stored for inputs the definition does not (or no longer) know; kept on save. */
  lgExtraInputs?: Record<string, unknown>;
  lgExtra?: Record<string, unknown>;
  lgRuntime: NodeRuntime;
}

export interface WidgetMeta {
  /** The seed input this control widget belongs to. */
  lgControlFor?: string;
  /** Front-end-only widget (upload button): not a value. */
  lgNoValue?: boolean;
  lgInput?: InputDef;
  lgMultiline?: boolean;
}

export type LgWidget = IBaseWidget & WidgetMeta;

/** Hooks the editor gives node classes (uploads, change notification, images). */
export interface NodeHooks {
  onWidgetChange(node: LgNode, widget: LgWidget): void;
  uploadImage(node: LgNode, widget: LgWidget): void;
  inputImageUrl(name: string): string;
}

const noop = (): void => undefined;

function newRuntime(): NodeRuntime {
  return { inputErrors: new Map(), images: [] };
}

function decimals(step: number): number {
  const s = String(step);
  const i = s.indexOf(".");
  return i < 0 ? 0 : Math.min(6, s.length - i - 1);
}

/** Snap a number to the input's rounding step (ComfyUI's `round`, else its step for INT). */
export function roundValue(input: InputDef, v: number): number {
  if (input.widget === "INT") return Math.round(v);
  const r = input.round === false ? 0 : input.round ?? 0;
  if (r > 0) return Math.round(v / r) * r;
  return v;
}

export function widgetHeightFor(w: LgWidget): number {
  return w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT + 4;
}

/** Create a widget for one input on a node; returns the widgets it added. */
export function addInputWidget(node: LgNode, input: InputDef, hooks: NodeHooks): void {
  const changed = (w: LgWidget) => () => hooks.onWidgetChange(node, w);
  let w: LgWidget;
  switch (input.widget) {
    case "INT":
    case "FLOAT": {
      const step = input.step ?? (input.widget === "INT" ? 1 : 0.01);
      const opts = {
        min: input.min,
        max: input.max,
        step2: step,
        step: step * 10,
        precision: input.widget === "INT" ? 0 : Math.max(decimals(step), input.round ? decimals(input.round) : 0, 1),
      };
      w = node.addWidget("number", input.name, Number(input.default ?? 0), noop, opts) as LgWidget;
      w.callback = (v: number) => {
        const r = roundValue(input, Number(v));
        if (r !== v) w.value = r;
        changed(w)();
      };
      break;
    }
    case "BOOLEAN":
      w = node.addWidget("toggle", input.name, Boolean(input.default), noop, { on: "true", off: "false" }) as LgWidget;
      w.callback = changed(w);
      break;
    case "COMBO":
      w = node.addWidget("combo", input.name, input.default as string, noop, { values: input.choices.map(String) }) as LgWidget;
      w.callback = changed(w);
      break;
    case "STRING":
    default:
      if (input.multiline) {
        w = addMultilineWidget(node, input.name, String(input.default ?? ""));
        w.callback = changed(w);
      } else {
        w = node.addWidget("text", input.name, String(input.default ?? ""), noop, {}) as LgWidget;
        w.callback = changed(w);
      }
  }
  w.lgInput = input;
  if (input.tooltip) w.tooltip = input.tooltip;
  node.addInput(input.name, input.type, { widget: { name: input.name } } as never);
  if (input.controlAfterGenerate) {
    const c = node.addWidget("combo", "control_after_generate", DEFAULT_SEED_CONTROL, noop, {
      values: [...SEED_CONTROLS],
    }) as LgWidget;
    c.lgControlFor = input.name;
    c.tooltip = `How ${input.name} changes after each queued run`;
    c.callback = changed(c);
  }
  if (input.imageUpload) {
    const b = node.addWidget("button", "choose file to upload", "image", noop, {}) as LgWidget;
    b.lgNoValue = true;
    b.label = "⬆ Upload image";
    b.callback = () => hooks.uploadImage(node, w);
  }
}

/** A text area widget: drawn as a frame, the editing happens in a DOM textarea overlay. */
function addMultilineWidget(node: LgNode, name: string, value: string): LgWidget {
  const widget = {
    type: "customtext",
    name,
    value,
    y: 0,
    options: {},
    lgMultiline: true,
    computeLayoutSize: () => ({ minHeight: 64, minWidth: 200 }),
    draw(ctx: CanvasRenderingContext2D, n: LGraphNode, width: number, y: number, h: number, lowQuality?: boolean) {
      const height = (this as LgWidget).computedHeight ?? h;
      ctx.save();
      ctx.fillStyle = THEME.widgetBg;
      ctx.strokeStyle = THEME.widgetOutline;
      ctx.beginPath();
      ctx.roundRect(15, y, width - 30, height - 4, 6);
      ctx.fill();
      ctx.stroke();
      if (lowQuality) {
        // The overlay is hidden when zoomed out: show the first line so the node stays readable.
        ctx.fillStyle = THEME.widgetSecondary;
        ctx.font = "12px sans-serif";
        ctx.fillText(String((this as LgWidget).value ?? "").split("\n")[0].slice(0, 60), 22, y + 16);
      }
      ctx.restore();
      void n;
    },
  };
  return node.addCustomWidget(widget as never) as LgWidget;
}

/** Build and register the litegraph class for one node definition. */
export function registerNodeClass(def: NodeDef, hooks: NodeHooks): void {
  class DefinedNode extends LGraphNode {
    static override title = def.displayName;
    static override category = def.category;
    lgDef = def;
    lgRuntime = newRuntime();
    constructor(title?: string) {
      super(title ?? def.displayName, def.name);
      const self = this as unknown as LgNode;
      for (const input of def.inputs) {
        if (input.widget === null) {
          this.addInput(input.name, input.type, input.optional ? ({ shape: 7 } as never) : undefined);
        } else {
          addInputWidget(self, input, hooks);
        }
      }
      for (const out of def.outputs) {
        this.addOutput(out.name, out.type, out.isList ? ({ shape: 6 } as never) : undefined);
      }
      this.serialize_widgets = true;
      const size = this.computeSize();
      this.setSize([Math.max(size[0], 240), size[1]]);
    }
  }
  LiteGraph.registerNodeType(def.name, DefinedNode as never);
}

/** Placeholder for a node type the server does not know: shows sockets and stored values. */
export function registerPlaceholderClass(type: string): void {
  if (LiteGraph.registered_node_types[type]) return;
  class PlaceholderNode extends LGraphNode {
    static override title = type;
    lgRuntime = newRuntime();
    constructor(title?: string) {
      super(title ?? type, type);
      this.color = "#5b2b2b";
      this.bgcolor = "#2a1f22";
    }
  }
  LiteGraph.registerNodeType(type, PlaceholderNode as never);
}

/** Give a placeholder node the sockets and read-only value rows of its document node. */
export function buildPlaceholder(node: LgNode, doc: NodeDoc, linkedInputs: string[]): void {
  node.lgPlaceholder = doc;
  const names = new Set<string>();
  for (const s of doc.slots?.inputs ?? []) {
    node.addInput(s.name, s.type);
    names.add(s.name);
  }
  for (const name of linkedInputs) {
    if (!names.has(name)) {
      node.addInput(name, "*");
      names.add(name);
    }
  }
  for (const s of doc.slots?.outputs ?? []) node.addOutput(s.name, s.type);
  const values = Object.entries(doc.inputs);
  const raw = doc.extra?.widgets_values;
  const shown: Array<[string, unknown]> = values.length ? values : Array.isArray(raw) ? raw.map((v, i) => [`value ${i + 1}`, v]) : [];
  for (const [name, value] of shown) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    node.addCustomWidget({
      type: "placeholder-value",
      name,
      value: text,
      y: 0,
      options: {},
      lgNoValue: true,
      draw(ctx: CanvasRenderingContext2D, _n: LGraphNode, width: number, y: number, h: number) {
        ctx.save();
        ctx.fillStyle = "rgba(0,0,0,0.25)";
        ctx.beginPath();
        ctx.roundRect(15, y, width - 30, h, h / 2);
        ctx.fill();
        ctx.font = "12px sans-serif";
        ctx.fillStyle = THEME.widgetSecondary;
        ctx.fillText(name, 26, y + h * 0.7);
        ctx.fillStyle = THEME.widgetText;
        ctx.textAlign = "right";
        const shownText = text.replace(/\s+/g, " ");
        ctx.fillText(shownText.length > 28 ? `${shownText.slice(0, 27)}…` : shownText, width - 26, y + h * 0.7);
        ctx.restore();
      },
    } as never);
  }
}

/** Front-end reroute: one input, one output, takes the type of what feeds it. */
export function registerRerouteClass(): void {
  if (LiteGraph.registered_node_types[REROUTE_TYPE]) return;
  class RerouteNode extends LGraphNode {
    static override title = "Reroute";
    lgRuntime = newRuntime();
    constructor(title?: string) {
      super(title ?? "Reroute", REROUTE_TYPE);
      this.addInput("", "*");
      this.addOutput("", "*");
      this.setSize([90, 26]);
      this.resizable = false;
    }
    override onConnectionsChange(): void {
      const link = this.inputs[0]?.link != null ? this.graph?.links.get(this.inputs[0].link!) : undefined;
      const type = link ? String(link.type) : "*";
      if (this.outputs[0]) {
        this.outputs[0].type = type;
        this.outputs[0].label = type === "*" ? "" : type;
      }
    }
  }
  (RerouteNode as unknown as { collapsable: boolean }).collapsable = false;
  LiteGraph.registerNodeType(REROUTE_TYPE, RerouteNode as never);
}

export function registerNoteClass(hooks: NodeHooks): void {
  if (LiteGraph.registered_node_types[NOTE_TYPE]) return;
  class NoteNode extends LGraphNode {
    static override title = "Note";
    lgRuntime = newRuntime();
    constructor(title?: string) {
      super(title ?? "Note", NOTE_TYPE);
      const w = addMultilineWidget(this as unknown as LgNode, "text", "");
      w.callback = () => hooks.onWidgetChange(this as unknown as LgNode, w);
      this.color = "#5f5426";
      this.bgcolor = "#3e381e";
      this.setSize([360, 160]);
    }
  }
  LiteGraph.registerNodeType(NOTE_TYPE, NoteNode as never);
}

/** Widgets whose values are stored in the document (not buttons or seed controls). */
export function valueWidgets(node: LgNode): LgWidget[] {
  return ((node.widgets ?? []) as LgWidget[]).filter((w) => !w.lgNoValue && !w.lgControlFor);
}

/** Editor-only node types offered next to the server's (never sent to it). */
export const EDITOR_NODES: NodeDef[] = [
  {
    name: REROUTE_TYPE, displayName: "Reroute", category: "utils", pythonModule: "", outputNode: false, deprecated: false, experimental: false,
    description: "Passes one link through a point you place, to tidy long wires.",
    inputs: [{ name: "", type: "*", widget: null, optional: false, default: undefined, choices: [], multiline: false, controlAfterGenerate: false, imageUpload: false, tooltip: "" }],
    outputs: [{ name: "", type: "*", isList: false, tooltip: "" }],
  },
  {
    name: NOTE_TYPE, displayName: "Note", category: "utils", pythonModule: "", outputNode: false, deprecated: false, experimental: false,
    description: "A text note on the canvas; not part of the run.", inputs: [], outputs: [],
  },
];
