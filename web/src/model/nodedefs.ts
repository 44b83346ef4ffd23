/** Typed node definitions parsed once from the server's /object_info (ComfyUI shape). */

export type RawInputSpec = [unknown, Record<string, unknown>?] | [unknown];

export interface RawNodeInfo {
  input?: {
    required?: Record<string, RawInputSpec>;
    optional?: Record<string, RawInputSpec>;
    hidden?: Record<string, unknown>;
  };
  input_order?: { required?: string[]; optional?: string[]; hidden?: string[] };
  output?: unknown[];
  output_is_list?: boolean[];
  output_name?: string[];
  output_tooltips?: string[];
  name?: string;
  display_name?: string;
  description?: string;
  category?: string;
  output_node?: boolean;
  python_module?: string;
  deprecated?: boolean;
  experimental?: boolean;
}

export type ObjectInfo = Record<string, RawNodeInfo>;

/** The widget an input gets when it is not linked; null means a plain socket. */
export type WidgetKind = "INT" | "FLOAT" | "STRING" | "BOOLEAN" | "COMBO";

export interface InputDef {
  name: string;
  /** Socket type used for link compatibility (COMBO for lists). */
  type: string;
  widget: WidgetKind | null;
  optional: boolean;
  default: unknown;
  choices: unknown[];
  min?: number;
  max?: number;
  step?: number;
  round?: number | false;
  multiline: boolean;
  controlAfterGenerate: boolean;
  imageUpload: boolean;
  tooltip: string;
}

export interface OutputDef {
  name: string;
  type: string;
  isList: boolean;
  tooltip: string;
}

export interface NodeDef {
  name: string;
  displayName: string;
  description: string;
  category: string;
  pythonModule: string;
  inputs: InputDef[];
  outputs: OutputDef[];
  outputNode: boolean;
  deprecated: boolean;
  experimental: boolean;
}

export type NodeDefs = Map<string, NodeDef>;

const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);
const SEED_NAMES = new Set(["seed", "noise_seed"]);

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** Parse one raw input spec into an InputDef. */
export function parseInput(name: string, spec: RawInputSpec, optional: boolean): InputDef {
  const head = spec[0];
  const opts = (spec[1] ?? {}) as Record<string, unknown>;
  let type: string;
  let choices: unknown[] = [];
  if (Array.isArray(head)) {
    type = "COMBO";
    choices = head;
  } else {
    type = String(head ?? "*");
    if (type === "COMBO" && Array.isArray(opts.options)) choices = opts.options as unknown[];
  }
  const forceInput = opts.forceInput === true;
  const widget = !forceInput && WIDGET_TYPES.has(type) ? (type as WidgetKind) : null;
  let def: unknown = opts.default;
  if (def === undefined) {
    if (widget === "INT" || widget === "FLOAT") def = num(opts.min) ?? 0;
    else if (widget === "STRING") def = "";
    else if (widget === "BOOLEAN") def = false;
    else if (widget === "COMBO") def = choices.length ? choices[0] : "";
  }
  return {
    name,
    type,
    widget,
    optional,
    default: def,
    choices,
    min: num(opts.min),
    max: num(opts.max),
    step: num(opts.step),
    round: opts.round === false ? false : num(opts.round),
    multiline: opts.multiline === true,
    controlAfterGenerate:
      widget === "INT" && (opts.control_after_generate === true || SEED_NAMES.has(name)),
    imageUpload: opts.image_upload === true,
    tooltip: typeof opts.tooltip === "string" ? opts.tooltip : "",
  };
}

function orderedNames(section: Record<string, unknown> | undefined, order: string[] | undefined): string[] {
  if (!section) return [];
  const keys = Object.keys(section);
  if (!order) return keys;
  const known = order.filter((k) => k in section);
  return [...known, ...keys.filter((k) => !known.includes(k))];
}

/** Parse one node class's info. */
export function parseNodeInfo(name: string, info: RawNodeInfo): NodeDef {
  const inputs: InputDef[] = [];
  const req = info.input?.required;
  const opt = info.input?.optional;
  for (const key of orderedNames(req, info.input_order?.required)) {
    inputs.push(parseInput(key, req![key], false));
  }
  for (const key of orderedNames(opt, info.input_order?.optional)) {
    inputs.push(parseInput(key, opt![key], true));
  }
  const rawOut = info.output ?? [];
  const outputs: OutputDef[] = rawOut.map((t, i) => {
    const type = Array.isArray(t) ? "COMBO" : String(t);
    return {
      name: info.output_name?.[i] ?? type,
      type,
      isList: info.output_is_list?.[i] === true,
      tooltip: info.output_tooltips?.[i] ?? "",
    };
  });
  return {
    name,
    displayName: info.display_name || name,
    description: info.description ?? "",
    category: info.category ?? "sd",
    pythonModule: info.python_module ?? "",
    inputs,
    outputs,
    outputNode: info.output_node === true,
    deprecated: info.deprecated === true,
    experimental: info.experimental === true,
  };
}

/** Parse the whole /object_info answer; classes whose info is malformed are skipped, not fatal. */
export function parseObjectInfo(info: ObjectInfo): NodeDefs {
  const defs: NodeDefs = new Map();
  for (const [name, raw] of Object.entries(info)) {
    try {
      defs.set(name, parseNodeInfo(name, raw));
    } catch {
      // A single broken custom node must not take the whole library down.
    }
  }
  return defs;
}

/** Inputs that carry a widget (editable value), in definition order. */
export function widgetInputs(def: NodeDef): InputDef[] {
  return def.inputs.filter((i) => i.widget !== null);
}

/** Inputs that are pure sockets (MODEL, LATENT, forceInput values, ...). */
export function socketInputs(def: NodeDef): InputDef[] {
  return def.inputs.filter((i) => i.widget === null);
}

/** Clamp / round a number the way the widget would, so imported values stay valid. */
export function coerceNumber(input: InputDef, value: number): number {
  let v = value;
  if (input.min !== undefined && v < input.min) v = input.min;
  if (input.max !== undefined && v > input.max) v = input.max;
  if (input.widget === "INT") v = Math.round(v);
  return v;
}
