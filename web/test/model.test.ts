import assert from "node:assert/strict";
import { test } from "node:test";
import { applyOps, CommandLog, diffDocs, invertOps } from "../src/model/commands";
import { importApiPrompt, importComfyUi, mapWidgetValues } from "../src/model/comfy";
import { defaultWorkflow } from "../src/model/defaultWorkflow";
import { autoLayout } from "../src/model/layout";
import { parseObjectInfo, widgetInputs } from "../src/model/nodedefs";
import { readPngText } from "../src/model/png";
import { workflowToPrompt } from "../src/model/prompt";
import { fuzzyScore, searchNodes } from "../src/model/search";
import { nextSeed, seedChanges } from "../src/model/seed";
import { typesCompatible } from "../src/model/types";
import { cloneDoc, stableStringify, validateWorkflow, WORKFLOW_FORMAT, WorkflowFormatError, type WorkflowDoc } from "../src/model/workflow";
import { OBJECT_INFO } from "./fixtures";

const defs = parseObjectInfo(OBJECT_INFO);

test("object_info parsing separates widgets from sockets and keeps input order", () => {
  const ks = defs.get("KSampler")!;
  assert.deepEqual(widgetInputs(ks).map((i) => i.name), ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"]);
  const seed = ks.inputs.find((i) => i.name === "seed")!;
  assert.equal(seed.controlAfterGenerate, true);
  assert.equal(ks.inputs.find((i) => i.name === "sampler_name")!.widget, "COMBO");
  assert.equal(ks.inputs.find((i) => i.name === "model")!.widget, null);
  assert.equal(defs.get("CLIPTextEncode")!.inputs[0].multiline, true);
  assert.equal(defs.get("LoadImage")!.inputs[0].imageUpload, true);
});

test("socket types: exact, wildcard and comma lists connect; others do not", () => {
  assert.ok(typesCompatible("MODEL", "MODEL"));
  assert.ok(typesCompatible("*", "LATENT"));
  assert.ok(typesCompatible("IMAGE", "IMAGE,MASK"));
  assert.ok(!typesCompatible("MODEL", "CLIP"));
  assert.ok(!typesCompatible("LATENT", "IMAGE"));
});

test("default workflow is wired and converts to the ComfyUI API prompt", () => {
  const doc = defaultWorkflow(defs);
  const { prompt, missingTypes } = workflowToPrompt(doc, defs);
  assert.deepEqual(missingTypes, []);
  assert.deepEqual(Object.keys(prompt).sort(), ["3", "4", "5", "6", "7", "8", "9"]);
  assert.deepEqual(prompt["3"].inputs.model, ["4", 0]);
  assert.deepEqual(prompt["3"].inputs.positive, ["6", 0]);
  assert.deepEqual(prompt["3"].inputs.negative, ["7", 0]);
  assert.deepEqual(prompt["3"].inputs.latent_image, ["5", 0]);
  assert.deepEqual(prompt["8"].inputs.vae, ["4", 2]);
  assert.equal(prompt["3"].class_type, "KSampler");
  assert.equal(prompt["3"].inputs.steps, 20);
  assert.equal(prompt["5"].inputs.width, 512);
  assert.equal(prompt["6"]._meta?.title, "Positive prompt");
});

function chain(): WorkflowDoc {
  // LoadImage(1) -> Invert(2) -> Invert(3) -> Save(4)
  const doc = validateWorkflow({
    format: WORKFLOW_FORMAT,
    version: 1,
    groups: [],
    nodes: [
      { id: 1, type: "LoadImage", pos: [0, 0], inputs: { image: "cat.png" } },
      { id: 2, type: "ImageInvert", pos: [0, 0], inputs: {} },
      { id: 3, type: "ImageInvert", pos: [0, 0], inputs: {} },
      { id: 4, type: "SaveImage", pos: [0, 0], inputs: { filename_prefix: "x" } },
    ],
    links: [
      { id: 1, from: [1, 0], to: [2, "image"], type: "IMAGE" },
      { id: 2, from: [2, 0], to: [3, "image"], type: "IMAGE" },
      { id: 3, from: [3, 0], to: [4, "images"], type: "IMAGE" },
    ],
  });
  return doc;
}

test("bypassed nodes are looked through and muted nodes are dropped with their links", () => {
  const doc = chain();
  doc.nodes[1].mode = "bypass";
  let { prompt } = workflowToPrompt(doc, defs);
  assert.equal(prompt["2"], undefined);
  assert.deepEqual(prompt["3"].inputs.image, ["1", 0]);
  doc.nodes[1].mode = "mute";
  ({ prompt } = workflowToPrompt(doc, defs));
  assert.equal(prompt["2"], undefined);
  assert.equal(prompt["3"].inputs.image, undefined);
});

test("reroutes pass links through and notes never reach the server", () => {
  const doc = chain();
  doc.nodes.push({ id: 9, type: "Reroute", pos: [0, 0], inputs: {} }, { id: 10, type: "Note", pos: [0, 0], inputs: { text: "hi" } });
  doc.links = doc.links.filter((l) => l.id !== 3);
  doc.links.push({ id: 4, from: [3, 0], to: [9, ""], type: "IMAGE" }, { id: 5, from: [9, 0], to: [4, "images"], type: "IMAGE" });
  const { prompt } = workflowToPrompt(doc, defs);
  assert.deepEqual(prompt["4"].inputs.images, ["3", 0]);
  assert.equal(prompt["9"], undefined);
  assert.equal(prompt["10"], undefined);
});

test("unknown node types are reported, and list values are wrapped", () => {
  const doc = chain();
  doc.nodes.push({ id: 7, type: "FancyPackNode", pos: [0, 0], inputs: { sizes: [1, 2] } });
  const { prompt, missingTypes } = workflowToPrompt(doc, defs);
  assert.deepEqual(missingTypes, ["FancyPackNode"]);
  assert.deepEqual(prompt["7"].inputs.sizes, { __value__: [1, 2] });
});

test("ComfyUI widgets_values map by position, skipping the control_after_generate value", () => {
  const ks = defs.get("KSampler")!;
  const m = mapWidgetValues(widgetInputs(ks), [156680208700286, "randomize", 25, 7.5, "heun", "karras", 0.8]);
  assert.deepEqual(m.inputs, { seed: 156680208700286, steps: 25, cfg: 7.5, sampler_name: "heun", scheduler: "karras", denoise: 0.8 });
  assert.deepEqual(m.controls, { seed: "randomize" });
  const old = mapWidgetValues(widgetInputs(ks), [5, true, 10, 8, "euler", "normal", 1]);
  assert.equal(old.inputs.steps, 10);
  const img = mapWidgetValues(widgetInputs(defs.get("LoadImage")!), ["dog.png", "image"]);
  assert.deepEqual(img.inputs, { image: "dog.png" });
  assert.deepEqual(img.leftover, []);
});

const COMFY_UI = {
  last_node_id: 9,
  last_link_id: 9,
  nodes: [
    { id: 4, type: "CheckpointLoaderSimple", pos: [26, 474], size: [315, 98], flags: {}, mode: 0, inputs: [],
      outputs: [{ name: "MODEL", type: "MODEL", links: [1] }, { name: "CLIP", type: "CLIP", links: [3, 5] }, { name: "VAE", type: "VAE", links: [8] }],
      properties: {}, widgets_values: ["b.safetensors"] },
    { id: 6, type: "CLIPTextEncode", pos: [415, 186], size: [422, 164], flags: {}, mode: 0,
      inputs: [{ name: "clip", type: "CLIP", link: 3 }], outputs: [{ name: "CONDITIONING", type: "CONDITIONING", links: [4] }],
      properties: {}, widgets_values: ["beautiful scenery"] },
    { id: 7, type: "CLIPTextEncode", pos: [413, 389], size: [425, 180], flags: {}, mode: 0, title: "Neg",
      inputs: [{ name: "clip", type: "CLIP", link: 5 }], outputs: [{ name: "CONDITIONING", type: "CONDITIONING", links: [6] }],
      properties: {}, widgets_values: ["text, watermark"] },
    { id: 5, type: "EmptyLatentImage", pos: [473, 609], size: [315, 106], flags: {}, mode: 0, inputs: [],
      outputs: [{ name: "LATENT", type: "LATENT", links: [2] }], properties: {}, widgets_values: [768, 512, 1] },
    { id: 3, type: "KSampler", pos: [863, 186], size: [315, 262], flags: {}, mode: 0,
      inputs: [{ name: "model", type: "MODEL", link: 1 }, { name: "positive", type: "CONDITIONING", link: 4 },
        { name: "negative", type: "CONDITIONING", link: 6 }, { name: "latent_image", type: "LATENT", link: 2 },
        { name: "steps", type: "INT", link: 10, widget: { name: "steps" } }],
      outputs: [{ name: "LATENT", type: "LATENT", links: [7] }], properties: {},
      widgets_values: [42, "fixed", 20, 8, "euler", "normal", 1] },
    { id: 8, type: "VAEDecode", pos: [1209, 188], size: [210, 46], flags: {}, mode: 4,
      inputs: [{ name: "samples", type: "LATENT", link: 7 }, { name: "vae", type: "VAE", link: 8 }],
      outputs: [{ name: "IMAGE", type: "IMAGE", links: [9] }], properties: {} },
    { id: 9, type: "SaveImage", pos: [1451, 189], size: [210, 58], flags: {}, mode: 0,
      inputs: [{ name: "images", type: "IMAGE", link: 9 }], outputs: [], properties: {}, widgets_values: ["ComfyUI"] },
    { id: 11, type: "MysteryNode", pos: [100, 800], size: [200, 80], flags: {}, mode: 0, inputs: [],
      outputs: [{ name: "out", type: "MYSTERY", links: [] }], properties: {}, widgets_values: [3, "abc"] },
    { id: 12, type: "PrimitiveNode", pos: [600, 50], size: [200, 80], flags: {}, mode: 0, inputs: [],
      outputs: [{ name: "INT", type: "INT", links: [10], widget: { name: "steps" } }], properties: {}, widgets_values: [33, "fixed"] },
  ],
  links: [
    [1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"],
    [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
    [9, 8, 0, 9, 0, "IMAGE"], [10, 12, 0, 3, 4, "INT"],
  ],
  groups: [{ title: "Prompts", bounding: [400, 100, 460, 500], color: "#3f789e" }],
  config: {},
  extra: { ds: { scale: 0.8, offset: [10, 20] } },
  version: 0.4,
};

test("ComfyUI UI-format import maps values by name, keeps links, modes, groups and placeholders", () => {
  const { doc, warnings } = importComfyUi(cloneDoc(COMFY_UI) as never, defs);
  const ks = doc.nodes.find((n) => n.id === 3)!;
  assert.equal(ks.inputs.seed, 42);
  assert.equal(ks.inputs.steps, 33, "primitive node value is pushed into its target");
  assert.equal(ks.inputs.sampler_name, "euler");
  assert.deepEqual(ks.controls, { seed: "fixed" });
  assert.equal(doc.nodes.find((n) => n.id === 5)!.inputs.width, 768);
  assert.equal(doc.nodes.find((n) => n.id === 7)!.title, "Neg");
  assert.equal(doc.nodes.find((n) => n.id === 8)!.mode, "bypass");
  assert.equal(doc.nodes.find((n) => n.id === 12), undefined);
  const mystery = doc.nodes.find((n) => n.id === 11)!;
  assert.deepEqual(mystery.extra, { widgets_values: [3, "abc"] });
  assert.deepEqual(mystery.slots?.outputs, [{ name: "out", type: "MYSTERY" }]);
  assert.ok(warnings.some((w) => w.includes("MysteryNode")));
  assert.equal(doc.links.length, 9);
  assert.deepEqual(doc.links.find((l) => l.id === 4), { id: 4, from: [6, 0], to: [3, "positive"], type: "CONDITIONING" });
  assert.deepEqual(doc.groups, [{ title: "Prompts", bounding: [400, 100, 460, 500], color: "#3f789e" }]);
  assert.deepEqual(doc.view, { scale: 0.8, offset: [10, 20] });
  // The imported graph runs: VAEDecode is bypassed, so SaveImage is fed by... nothing of type IMAGE.
  const { prompt } = workflowToPrompt(doc, defs);
  assert.equal(prompt["9"].inputs.images, undefined);
  assert.deepEqual(prompt["3"].inputs.model, ["4", 0]);
});

test("API-format import rebuilds links and lays nodes out left to right", () => {
  const api = workflowToPrompt(defaultWorkflow(defs), defs).prompt;
  const { doc, warnings } = importApiPrompt(api, defs);
  assert.deepEqual(warnings, []);
  const back = workflowToPrompt(doc, defs).prompt;
  assert.deepEqual(stripMeta(back), stripMeta(api));
  const x = (id: number) => doc.nodes.find((n) => n.id === id)!.pos[0];
  assert.ok(x(4) < x(6) && x(6) < x(3) && x(3) < x(8) && x(8) < x(9));
  assert.equal(doc.nodes.find((n) => n.id === 3)!.controls?.seed, "fixed");
});

test("a file saved before a node gained an input gets its default, with one warning per input", () => {
  const api = workflowToPrompt(defaultWorkflow(defs), defs).prompt;
  delete (api["3"].inputs as Record<string, unknown>).denoise; // KSampler as saved by an older version
  const { doc, warnings } = importApiPrompt(api, defs);
  assert.equal(doc.nodes.find((n) => n.id === 3)!.inputs.denoise, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /KSampler #3: input 'denoise' is missing .* default 1/);
  const ui = {
    nodes: [{ id: 3, type: "KSampler", inputs: [], outputs: [], widgets_values: [5, "fixed", 20, 8, "euler", "normal"] }],
    links: [],
  };
  const imported = importComfyUi(ui as never, defs);
  assert.equal(imported.doc.nodes[0].inputs.denoise, 1);
  assert.deepEqual(imported.warnings.filter((w) => w.includes("missing")).length, 1);
});

function stripMeta(p: Record<string, { class_type: string; inputs: Record<string, unknown> }>) {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, { class_type: v.class_type, inputs: v.inputs }]));
}

test("auto layout never stacks two nodes on the same spot", () => {
  const { doc } = importApiPrompt(workflowToPrompt(defaultWorkflow(defs), defs).prompt, defs);
  autoLayout(doc);
  const spots = new Set(doc.nodes.map((n) => n.pos.join(",")));
  assert.equal(spots.size, doc.nodes.length);
});

test("workflow validation names the problem", () => {
  assert.throws(() => validateWorkflow({ format: WORKFLOW_FORMAT, version: 1, nodes: [{ id: 1, type: "X", pos: [0], inputs: {} }], links: [] }), WorkflowFormatError);
  assert.throws(() => validateWorkflow({ format: "other" }), /not a latentgraph.editor-doc/);
  assert.throws(
    () => validateWorkflow({ format: WORKFLOW_FORMAT, version: 1, nodes: [], links: [{ id: 1, from: [5, 0], to: [6, "a"], type: "X" }] }),
    /links\[0\]\.from/,
  );
});

test("command log: diff, apply and invert restore every earlier document", () => {
  const a = defaultWorkflow(defs);
  const b = cloneDoc(a);
  b.nodes.find((n) => n.id === 3)!.inputs.steps = 30;
  b.nodes.find((n) => n.id === 5)!.pos = [0, 0];
  b.links = b.links.filter((l) => l.id !== 9);
  b.nodes = b.nodes.filter((n) => n.id !== 9);
  b.nodes.push({ id: 10, type: "ImageInvert", pos: [5, 5], inputs: {} });
  b.links.push({ id: 10, from: [8, 0], to: [10, "image"], type: "IMAGE" });
  b.groups.push({ title: "G", bounding: [0, 0, 10, 10] });
  const ops = diffDocs(a, b);
  assert.equal(stableStringify(applyOps(a, ops)), stableStringify(b));
  assert.equal(stableStringify(applyOps(b, invertOps(ops))), stableStringify(a));
  const log = new CommandLog();
  log.record(ops);
  assert.ok(log.canUndo && !log.canRedo);
  const undo = log.undo()!;
  assert.equal(stableStringify(applyOps(b, undo)), stableStringify(a));
  assert.equal(stableStringify(applyOps(a, log.redo()!)), stableStringify(b));
  // Stored operations are deltas: an untouched node does not appear in the command.
  assert.ok(!JSON.stringify(ops).includes('"CLIPTextEncode"'));
});

test("seed controls: increment wraps, randomize stays in range, fixed never changes", () => {
  assert.equal(nextSeed(5, "increment", 0, 10), 6);
  assert.equal(nextSeed(10, "increment", 0, 10), 0);
  assert.equal(nextSeed(0, "decrement", 0, 10), 10);
  assert.equal(nextSeed(7, "fixed", 0, 10), 7);
  for (let i = 0; i < 200; i++) {
    const r = nextSeed(0, "randomize", 3, 9);
    assert.ok(r >= 3 && r <= 9 && Number.isInteger(r));
  }
  const big = nextSeed(0, "randomize", 0, 18446744073709551615);
  assert.ok(Number.isSafeInteger(big));
  const doc = defaultWorkflow(defs);
  const ks = doc.nodes.find((n) => n.id === 3)!;
  ks.inputs.seed = 100;
  ks.controls = { seed: "increment" };
  assert.deepEqual(seedChanges(doc, defs), [[3, "seed", 101]]);
  ks.controls = { seed: "fixed" };
  assert.deepEqual(seedChanges(doc, defs), []);
});

test("fuzzy search ranks exact and prefix matches first and honours type filters", () => {
  assert.ok(fuzzyScore("ksam", "KSampler") > fuzzyScore("ksam", "Kernel Sampler Adv Mode"));
  assert.equal(fuzzyScore("zzz", "KSampler"), 0);
  const hits = searchNodes(defs.values(), "sampler");
  assert.equal(hits[0].def.name, "KSampler");
  const latentTakers = searchNodes(defs.values(), "", { inputType: "LATENT" }).map((h) => h.def.name).sort();
  assert.deepEqual(latentTakers, ["KSampler", "VAEDecode"]);
  const imageMakers = searchNodes(defs.values(), "", { outputType: "IMAGE" }).map((h) => h.def.name).sort();
  assert.deepEqual(imageMakers, ["ImageInvert", "LoadImage", "VAEDecode"]);
  assert.equal(searchNodes(defs.values(), "text prompt")[0].def.name, "CLIPTextEncode");
  assert.equal(searchNodes(defs.values(), "checkpoint")[0].def.name, "CheckpointLoaderSimple");
});

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

test("PNG text chunks (tEXt with UTF-8 and iTXt) are read, other chunks skipped", async () => {
  const enc = new TextEncoder();
  const sig = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
  const text = chunk("tEXt", new Uint8Array([...enc.encode("workflow"), 0, ...enc.encode('{"a":"é"}')]));
  const itxt = chunk("iTXt", new Uint8Array([...enc.encode("prompt"), 0, 0, 0, 0, 0, ...enc.encode('{"b":1}')]));
  const idat = chunk("IDAT", new Uint8Array([1, 2, 3]));
  const iend = chunk("IEND", new Uint8Array());
  const png = new Uint8Array([...sig, ...idat, ...text, ...itxt, ...iend]);
  const chunks = await readPngText(png);
  assert.deepEqual(chunks, { workflow: '{"a":"é"}', prompt: '{"b":1}' });
  await assert.rejects(readPngText(new Uint8Array([1, 2, 3])), /not a PNG/);
});

test("saved file format: links live in inputs by name, modes and layout survive a round trip", async () => {
  const { fromFile, toFile } = await import("../src/model/fileFormat");
  const doc = defaultWorkflow(defs);
  doc.nodes.find((n) => n.id === 8)!.mode = "bypass";
  doc.nodes.find((n) => n.id === 3)!.controls = { seed: "increment" };
  doc.groups.push({ title: "Prompts", bounding: [400, 100, 460, 500], color: "#335" });
  doc.view = { scale: 0.8, offset: [10, 20] };
  const file = toFile(doc, defs);
  assert.deepEqual(file.nodes["3"].inputs.model, { node: "4", output: 0 });
  assert.equal(file.nodes["3"].inputs.steps, 20);
  assert.equal(file.nodes["8"].mode, "bypassed");
  assert.deepEqual(file.nodes["3"].ui?.controls, { seed: "increment" });
  assert.equal(file.nodes["3"].ui?.slots, undefined, "known nodes do not store their sockets");
  const back = fromFile(JSON.parse(JSON.stringify(file)), defs);
  assert.equal(stableStringify(toFile(back, defs)), stableStringify(file));
  assert.deepEqual(back.groups, doc.groups);
  assert.deepEqual(back.view, doc.view);
  assert.deepEqual(stripMeta(workflowToPrompt(back, defs).prompt), stripMeta(workflowToPrompt(doc, defs).prompt));
});

test("saved file format: unknown nodes keep their values and sockets; outputs may be named", async () => {
  const { fromFile, toFile } = await import("../src/model/fileFormat");
  const file = {
    format: "latentgraph.workflow",
    version: 1,
    nodes: {
      "1": { type: "CheckpointLoaderSimple", inputs: { ckpt_name: "a.safetensors" } },
      "2": { type: "FancyUpscaler", inputs: { model: { node: "1", output: "MODEL" }, factor: 2.5, mode: ["a", "b"] }, ui: { pos: [300, 0] } },
      "3": { type: "KSampler", inputs: { model: { node: "2", output: 0 }, seed: 7 } },
    },
    extra: { note: "kept" },
  };
  const doc = fromFile(file, defs);
  const fancy = doc.nodes.find((n) => n.id === 2)!;
  assert.deepEqual(fancy.inputs, { factor: 2.5, mode: ["a", "b"] });
  assert.deepEqual(fancy.slots, { inputs: [{ name: "model", type: "MODEL" }], outputs: [{ name: "output 0", type: "MODEL" }] });
  assert.deepEqual(doc.links.find((l) => l.to[0] === 2)!.from, [1, 0]);
  const again = toFile(doc, defs);
  assert.deepEqual(again.nodes["2"].inputs, { factor: 2.5, mode: ["a", "b"], model: { node: "1", output: 0 } });
  assert.deepEqual(again.extra, { note: "kept" });
  assert.equal(stableStringify(toFile(fromFile(JSON.parse(JSON.stringify(again)), defs), defs)), stableStringify(again));
  assert.throws(() => fromFile({ ...file, version: 2 }, defs), /version 2 is not supported/);
  assert.throws(() => fromFile({ format: "latentgraph.workflow", version: 1, nodes: { "1": { type: "KSampler", inputs: { model: { node: "9", output: 0 } } } } }, defs), /unknown node "9"/);
});

test("ComfyUI UI export round-trips through our importer: values, controls, links, modes", async () => {
  const { toComfyUi } = await import("../src/model/comfyExport");
  const doc = defaultWorkflow(defs);
  const ks = doc.nodes.find((n) => n.id === 3)!;
  ks.inputs.seed = 99;
  ks.controls = { seed: "increment" };
  ks.title = "Main";
  doc.nodes.find((n) => n.id === 8)!.mode = "bypass";
  const ui = toComfyUi(doc, defs) as { nodes: Array<{ id: number; widgets_values: unknown[] }> };
  assert.deepEqual(ui.nodes.find((n) => n.id === 3)!.widgets_values, [99, "increment", 20, 7, "euler", "normal", 1]);
  const { doc: back } = importComfyUi(JSON.parse(JSON.stringify(ui)) as never, defs);
  assert.deepEqual(stripMeta(workflowToPrompt(back, defs).prompt), stripMeta(workflowToPrompt(doc, defs).prompt));
  assert.equal(back.nodes.find((n) => n.id === 3)!.title, "Main");
  assert.deepEqual(back.nodes.find((n) => n.id === 3)!.controls, { seed: "increment" });
  assert.equal(back.nodes.find((n) => n.id === 8)!.mode, "bypass");
  assert.equal(back.links.length, doc.links.length);
});
