/** The text-to-image graph a new user sees first, wired and ready to queue. */
import { type NodeDefs, widgetInputs } from "./nodedefs";
import { emptyWorkflow, type NodeDoc, type WorkflowDoc } from "./workflow";

interface Spec {
  id: number;
  type: string;
  pos: [number, number];
  size: [number, number];
  title?: string;
  values?: Record<string, unknown>;
}

const SPECS: Spec[] = [
  { id: 4, type: "CheckpointLoaderSimple", pos: [40, 300], size: [330, 110] },
  {
    id: 6,
    type: "CLIPTextEncode",
    pos: [430, 120],
    size: [420, 200],
    title: "Positive prompt",
    values: { text: "a photograph of a lighthouse on a cliff at sunset, dramatic sky, highly detailed" },
  },
  {
    id: 7,
    type: "CLIPTextEncode",
    pos: [430, 380],
    size: [420, 200],
    title: "Negative prompt",
    values: { text: "blurry, low quality, watermark, text" },
  },
  { id: 5, type: "EmptyLatentImage", pos: [480, 640], size: [330, 130], values: { width: 512, height: 512, batch_size: 1 } },
  { id: 3, type: "KSampler", pos: [910, 160], size: [330, 330], values: { steps: 20, cfg: 7 } },
  { id: 8, type: "VAEDecode", pos: [1300, 160], size: [220, 60] },
  { id: 9, type: "SaveImage", pos: [1570, 160], size: [420, 460] },
];

const LINKS: Array<[number, number, number, number, string]> = [
  // [id, from node, from slot, to node, input name]
  [1, 4, 0, 3, "model"],
  [2, 4, 1, 6, "clip"],
  [3, 4, 1, 7, "clip"],
  [4, 6, 0, 3, "positive"],
  [5, 7, 0, 3, "negative"],
  [6, 5, 0, 3, "latent_image"],
  [7, 3, 0, 8, "samples"],
  [8, 4, 2, 8, "vae"],
  [9, 8, 0, 9, "images"],
];

const FALLBACK_TYPES: Record<string, string> = {
  "4:0": "MODEL",
  "4:1": "CLIP",
  "4:2": "VAE",
  "6:0": "CONDITIONING",
  "7:0": "CONDITIONING",
  "5:0": "LATENT",
  "3:0": "LATENT",
  "8:0": "IMAGE",
};

export function defaultWorkflow(defs: NodeDefs): WorkflowDoc {
  const doc = emptyWorkflow();
  for (const s of SPECS) {
    const def = defs.get(s.type);
    const node: NodeDoc = { id: s.id, type: s.type, pos: [...s.pos], size: [...s.size], inputs: {} };
    if (s.title) node.title = s.title;
    if (def) {
      for (const input of widgetInputs(def)) node.inputs[input.name] = input.default;
      node.slots = {
        inputs: def.inputs.filter((i) => i.widget === null).map((i) => ({ name: i.name, type: i.type })),
        outputs: def.outputs.map((o) => ({ name: o.name, type: o.type })),
      };
    }
    Object.assign(node.inputs, s.values ?? {});
    if (def?.inputs.some((i) => i.name === "filename_prefix")) node.inputs.filename_prefix = "Latentgraph";
    doc.nodes.push(node);
  }
  for (const [id, from, slot, to, name] of LINKS) {
    const type = defs.get(SPECS.find((s) => s.id === from)!.type)?.outputs[slot]?.type ?? FALLBACK_TYPES[`${from}:${slot}`];
    doc.links.push({ id, from: [from, slot], to: [to, name], type });
  }
  doc.nodes.sort((a, b) => a.id - b.id);
  return doc;
}
