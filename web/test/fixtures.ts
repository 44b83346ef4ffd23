/** Node definitions in /object_info shape shared by the unit tests. */
import type { ObjectInfo } from "../src/model/nodedefs";

const MAX_SEED = 18446744073709551615;

export const OBJECT_INFO: ObjectInfo = {
  CheckpointLoaderSimple: {
    input: { required: { ckpt_name: [["a.safetensors", "b.safetensors"], {}] } },
    input_order: { required: ["ckpt_name"] },
    output: ["MODEL", "CLIP", "VAE"],
    output_name: ["MODEL", "CLIP", "VAE"],
    name: "CheckpointLoaderSimple",
    display_name: "Load Checkpoint",
    category: "loaders",
    description: "Loads a diffusion model checkpoint.",
  },
  CLIPTextEncode: {
    input: { required: { text: ["STRING", { multiline: true }], clip: ["CLIP"] } },
    input_order: { required: ["text", "clip"] },
    output: ["CONDITIONING"],
    name: "CLIPTextEncode",
    display_name: "CLIP Text Encode (Prompt)",
    category: "conditioning",
    description: "Encodes a text prompt.",
  },
  EmptyLatentImage: {
    input: {
      required: {
        width: ["INT", { default: 512, min: 16, max: 16384, step: 8 }],
        height: ["INT", { default: 512, min: 16, max: 16384, step: 8 }],
        batch_size: ["INT", { default: 1, min: 1, max: 4096 }],
      },
    },
    input_order: { required: ["width", "height", "batch_size"] },
    output: ["LATENT"],
    name: "EmptyLatentImage",
    display_name: "Empty Latent Image",
    category: "latent",
  },
  KSampler: {
    input: {
      required: {
        model: ["MODEL"],
        seed: ["INT", { default: 0, min: 0, max: MAX_SEED, control_after_generate: true }],
        steps: ["INT", { default: 20, min: 1, max: 10000 }],
        cfg: ["FLOAT", { default: 8, min: 0, max: 100, step: 0.1, round: 0.01 }],
        sampler_name: [["euler", "heun", "dpmpp_2m"]],
        scheduler: [["normal", "karras"]],
        positive: ["CONDITIONING"],
        negative: ["CONDITIONING"],
        latent_image: ["LATENT"],
        denoise: ["FLOAT", { default: 1, min: 0, max: 1, step: 0.01 }],
      },
    },
    input_order: {
      required: ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"],
    },
    output: ["LATENT"],
    name: "KSampler",
    display_name: "KSampler",
    category: "sampling",
    description: "Denoises a latent image with the model.",
  },
  VAEDecode: {
    input: { required: { samples: ["LATENT"], vae: ["VAE"] } },
    output: ["IMAGE"],
    name: "VAEDecode",
    display_name: "VAE Decode",
    category: "latent",
  },
  SaveImage: {
    input: { required: { images: ["IMAGE"], filename_prefix: ["STRING", { default: "ComfyUI" }] } },
    output: [],
    name: "SaveImage",
    display_name: "Save Image",
    category: "image",
    output_node: true,
  },
  LoadImage: {
    input: { required: { image: [["cat.png", "dog.png"], { image_upload: true }] } },
    output: ["IMAGE", "MASK"],
    name: "LoadImage",
    display_name: "Load Image",
    category: "image",
  },
  ImageInvert: {
    input: { required: { image: ["IMAGE"] } },
    output: ["IMAGE"],
    name: "ImageInvert",
    display_name: "Invert Image",
    category: "image",
  },
};
