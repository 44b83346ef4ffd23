"""Nodes exercising folder_paths, comfy.utils, comfy.model_management, node_helpers and blockers."""

import os

import numpy as np
import torch
from PIL import Image

import comfy.model_management
import comfy.samplers
import comfy.utils
import folder_paths
import node_helpers
import nodes
from comfy_execution.graph_utils import ExecutionBlocker

# The idiom popular packs use to register a model folder of their own at import time.
if "style_models_of_pack" in folder_paths.folder_names_and_paths:
    _current, _ = folder_paths.folder_names_and_paths["style_models_of_pack"]
else:
    _current = [os.path.join(folder_paths.models_dir, "style_models_of_pack")]
folder_paths.folder_names_and_paths["style_models_of_pack"] = (_current, folder_paths.supported_pt_extensions)


class StyleModelPath:
    CATEGORY = "compat test"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "find"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),),
                             "sampler": (comfy.samplers.KSampler.SAMPLERS,)}}

    def find(self, ckpt_name, sampler):
        return (folder_paths.get_full_path("checkpoints", ckpt_name),)


class StyleModelPathByText:
    CATEGORY = "compat test"
    RETURN_TYPES = ("STRING",)
    OUTPUT_NODE = True
    FUNCTION = "find"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": ""})}}

    def find(self, name):
        path = str(folder_paths.get_full_path("checkpoints", name))
        return {"ui": {"text": [path]}, "result": (path,)}


class StyleLoadImage:
    CATEGORY = "compat test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        input_dir = folder_paths.get_input_directory()
        files = [f for f in os.listdir(input_dir) if os.path.isfile(os.path.join(input_dir, f))]
        return {"required": {"image": ("STRING", {"default": sorted(files)[0] if files else ""})}}

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        if not folder_paths.exists_annotated_filepath(image):
            return f"Invalid image file: {image}"
        return True

    def load(self, image):
        picture = node_helpers.pillow(Image.open, folder_paths.get_annotated_filepath(image)).convert("RGB")
        array = np.asarray(picture, dtype=np.float32) / 255.0
        return (torch.from_numpy(array)[None],)


class StyleSlowInvert:
    CATEGORY = "compat test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "steps": ("INT", {"default": 4, "min": 1, "max": nodes.MAX_RESOLUTION})}}

    def invert(self, image, steps):
        bar = comfy.utils.ProgressBar(steps)
        result = image
        for step in range(steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            result = 1.0 - result
            preview = Image.fromarray((result[0].numpy() * 255).astype(np.uint8))
            bar.update_absolute(step + 1, steps, ("JPEG", preview, 16))
        return (result,)


class StyleUpscale:
    CATEGORY = "compat test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "scale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "width": ("INT", {"default": 8}),
                             "height": ("INT", {"default": 8})}}

    def scale(self, image, width, height):
        samples = image.movedim(-1, 1)
        scaled = comfy.utils.common_upscale(samples, width, height, "bilinear", "center")
        return (scaled.movedim(1, -1).to(comfy.model_management.intermediate_device()),)


class StyleTiledUpscale:
    """Like upscale-model packs: a weights file from a pack folder, tiled_scale with a progress bar."""

    CATEGORY = "compat test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "model_name": (folder_paths.get_filename_list("style_models_of_pack"),)}}

    def upscale(self, image, model_name):
        weights = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("style_models_of_pack", model_name),
                                              safe_load=True)
        gain = weights["gain"]
        samples = image.movedim(-1, 1)
        steps = comfy.utils.get_tiled_scale_steps(samples.shape[3], samples.shape[2], 8, 8, 2) * samples.shape[0]
        bar = comfy.utils.ProgressBar(steps)

        def model(tile):
            return (tile * gain).repeat_interleave(2, -1).repeat_interleave(2, -2)

        scaled = comfy.utils.tiled_scale(samples, model, tile_x=8, tile_y=8, overlap=2, upscale_amount=2, pbar=bar)
        return (torch.clamp(scaled, 0, 1).movedim(1, -1),)


class StyleSaveImage:
    CATEGORY = "compat test"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "compat"})}}

    def save(self, images, filename_prefix):
        full_output_folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), images.shape[2], images.shape[1])
        results = []
        for image in images:
            picture = Image.fromarray(np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8))
            file = f"{filename}_{counter:05}_.png"
            picture.save(os.path.join(full_output_folder, file))
            results.append({"filename": file, "subfolder": subfolder, "type": "output"})
            counter += 1
        return {"ui": {"images": results}}


class StyleGate:
    CATEGORY = "compat test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "gate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "open": ("BOOLEAN", {"default": True})}}

    def gate(self, image, open):
        return (image if open else ExecutionBlocker(None),)


NODE_CLASS_MAPPINGS = {
    "StyleModelPath": StyleModelPath,
    "StyleModelPathByText": StyleModelPathByText,
    "StyleLoadImage": StyleLoadImage,
    "StyleSlowInvert": StyleSlowInvert,
    "StyleUpscale": StyleUpscale,
    "StyleTiledUpscale": StyleTiledUpscale,
    "StyleSaveImage": StyleSaveImage,
    "StyleGate": StyleGate,
}
NODE_DISPLAY_NAME_MAPPINGS = {"StyleSlowInvert": "Slow Invert (ComfyUI style)"}
