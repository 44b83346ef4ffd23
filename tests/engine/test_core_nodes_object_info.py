"""/object_info of the latent, image and mask nodes of issue 13: ComfyUI's names, categories, input
names (in order, by section), defaults, outputs and display names, transcribed from ComfyUI's
nodes.py and comfy_extras (nodes_latent, nodes_mask, nodes_images, nodes_post_processing,
nodes_rebatch, nodes_morphology, nodes_compositing, websocket_image_save), so a rename on either side is caught."""

from __future__ import annotations

import pytest

from tests.support.engine_fixtures import make_runtime

L, A, OPS = "latent", "latent/advanced", "latent/advanced/operations"
POST = "image/postprocessing"
_ = None  # a link or a combo without a declared default

# name: (category, outputs, {input: default}, optional inputs)
SPEC: dict[str, tuple[str, list[str], dict[str, object], dict[str, object]]] = {
    # latent
    "LatentComposite": (L, ["LATENT"], {"samples_to": _, "samples_from": _, "x": 0, "y": 0, "feather": 0}, {}),
    "LatentCompositeMasked": (L, ["LATENT"], {"destination": _, "source": _, "x": 0, "y": 0,
                                              "resize_source": False}, {"mask": _}),
    "LatentBlend": ("_for_testing", ["LATENT"], {"samples1": _, "samples2": _, "blend_factor": 0.5}, {}),
    "LatentRotate": ("latent/transform", ["LATENT"], {"samples": _, "rotation": _}, {}),
    "LatentFlip": ("latent/transform", ["LATENT"], {"samples": _, "flip_method": _}, {}),
    "LatentCrop": ("latent/transform", ["LATENT"], {"samples": _, "width": 512, "height": 512, "x": 0, "y": 0}, {}),
    "LatentAdd": (A, ["LATENT"], {"samples1": _, "samples2": _}, {}),
    "LatentSubtract": (A, ["LATENT"], {"samples1": _, "samples2": _}, {}),
    "LatentMultiply": (A, ["LATENT"], {"samples": _, "multiplier": 1.0}, {}),
    "LatentInterpolate": (A, ["LATENT"], {"samples1": _, "samples2": _, "ratio": 1.0}, {}),
    "LatentConcat": (A, ["LATENT"], {"samples1": _, "samples2": _, "dim": _}, {}),
    "LatentCut": (A, ["LATENT"], {"samples": _, "dim": _, "index": 0, "amount": 1}, {}),
    "LatentBatch": ("latent/batch", ["LATENT"], {"samples1": _, "samples2": _}, {}),
    "LatentBatchSeedBehavior": (A, ["LATENT"], {"samples": _, "seed_behavior": "fixed"}, {}),
    "RebatchLatents": ("latent/batch", ["LATENT"], {"latents": _, "batch_size": 1}, {}),
    "LatentApplyOperation": (OPS, ["LATENT"], {"samples": _, "operation": _}, {}),
    "LatentApplyOperationCFG": (OPS, ["MODEL"], {"model": _, "operation": _}, {}),
    "LatentOperationTonemapReinhard": (OPS, ["LATENT_OPERATION"], {"multiplier": 1.0}, {}),
    "LatentOperationSharpen": (OPS, ["LATENT_OPERATION"], {"sharpen_radius": 9, "sigma": 1.0, "alpha": 0.1}, {}),
    # image
    "ImagePadForOutpaint": ("image", ["IMAGE", "MASK"], {"image": _, "left": 0, "top": 0, "right": 0, "bottom": 0,
                                                         "feathering": 40}, {}),
    "ImageScaleToTotalPixels": ("image/upscaling", ["IMAGE"], {"image": _, "upscale_method": _,
                                                               "megapixels": 1.0}, {}),
    "ImageScaleToMaxDimension": ("image/upscaling", ["IMAGE"], {"image": _, "upscale_method": _,
                                                                 "largest_size": 512}, {}),
    "ResizeAndPadImage": ("image/transform", ["IMAGE"], {"image": _, "target_width": 512, "target_height": 512,
                                                         "padding_color": _, "interpolation": _}, {}),
    "ImageAddNoise": ("image", ["IMAGE"], {"image": _, "seed": 0, "strength": 0.5}, {}),
    "PorterDuffImageComposite": ("mask/compositing", ["IMAGE", "MASK"], {"source": _, "source_alpha": _,
                                                                         "destination": _, "destination_alpha": _,
                                                                         "mode": "DST"}, {}),
    "SplitImageWithAlpha": ("mask/compositing", ["IMAGE", "MASK"], {"image": _}, {}),
    "JoinImageWithAlpha": ("mask/compositing", ["IMAGE"], {"image": _, "alpha": _}, {}),
    "ImageBlend": (POST, ["IMAGE"], {"image1": _, "image2": _, "blend_factor": 0.5, "blend_mode": _}, {}),
    "ImageBlur": (POST, ["IMAGE"], {"image": _, "blur_radius": 1, "sigma": 1.0}, {}),
    "ImageSharpen": (POST, ["IMAGE"], {"image": _, "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0}, {}),
    "ImageQuantize": (POST, ["IMAGE"], {"image": _, "colors": 256, "dither": _}, {}),
    "ImageCompositeMasked": ("image", ["IMAGE"], {"destination": _, "source": _, "x": 0, "y": 0,
                                                  "resize_source": False}, {"mask": _}),
    "ImageFromBatch": ("image/batch", ["IMAGE"], {"image": _, "batch_index": 0, "length": 1}, {}),
    "RepeatImageBatch": ("image/batch", ["IMAGE"], {"image": _, "amount": 1}, {}),
    "RebatchImages": ("image/batch", ["IMAGE"], {"images": _, "batch_size": 1}, {}),
    "GetImageSize": ("image", ["INT", "INT", "INT"], {"image": _}, {}),
    "ImageStitch": ("image/transform", ["IMAGE"], {"image1": _, "direction": "right", "match_image_size": True,
                                                   "spacing_width": 0, "spacing_color": "white"}, {"image2": _}),
    "ImageFlip": ("image/transform", ["IMAGE"], {"image": _, "flip_method": _}, {}),
    "ImageRotate": ("image/transform", ["IMAGE"], {"image": _, "rotation": _}, {}),
    "EmptyImage": ("image", ["IMAGE"], {"width": 512, "height": 512, "batch_size": 1, "color": 0}, {}),
    "SaveAnimatedWEBP": ("image/animation", [], {"images": _, "filename_prefix": "ComfyUI", "fps": 6.0,
                                                 "lossless": True, "quality": 80, "method": _}, {}),
    "SaveAnimatedPNG": ("image/animation", [], {"images": _, "filename_prefix": "ComfyUI", "fps": 6.0,
                                                "compress_level": 4}, {}),
    "SaveImageWebsocket": ("api/image", [], {"images": _}, {}),
    # mask
    "LoadImageMask": ("mask", ["MASK"], {"image": _, "channel": _}, {}),
    "MaskToImage": ("mask", ["IMAGE"], {"mask": _}, {}),
    "ImageToMask": ("mask", ["MASK"], {"image": _, "channel": _}, {}),
    "ImageColorToMask": ("mask", ["MASK"], {"image": _, "color": 0}, {}),
    "SolidMask": ("mask", ["MASK"], {"value": 1.0, "width": 512, "height": 512}, {}),
    "InvertMask": ("mask", ["MASK"], {"mask": _}, {}),
    "CropMask": ("mask", ["MASK"], {"mask": _, "x": 0, "y": 0, "width": 512, "height": 512}, {}),
    "MaskComposite": ("mask", ["MASK"], {"destination": _, "source": _, "x": 0, "y": 0, "operation": _}, {}),
    "FeatherMask": ("mask", ["MASK"], {"mask": _, "left": 0, "top": 0, "right": 0, "bottom": 0}, {}),
    "GrowMask": ("mask", ["MASK"], {"mask": _, "expand": 0, "tapered_corners": True}, {}),
    "ThresholdMask": ("mask", ["MASK"], {"mask": _, "value": 0.5}, {}),
    "MaskPreview": ("mask", [], {"mask": _}, {}),
    "Morphology": (POST, ["IMAGE"], {"image": _, "operation": _, "kernel_size": 3}, {}),
}

COMBOS = {
    ("LatentRotate", "rotation"): ["none", "90 degrees", "180 degrees", "270 degrees"],
    ("ImageRotate", "rotation"): ["none", "90 degrees", "180 degrees", "270 degrees"],
    ("LatentFlip", "flip_method"): ["x-axis: vertically", "y-axis: horizontally"],
    ("ImageFlip", "flip_method"): ["x-axis: vertically", "y-axis: horizontally"],
    ("LatentBatchSeedBehavior", "seed_behavior"): ["random", "fixed"],
    ("ImageScaleToTotalPixels", "upscale_method"): ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"],
    ("ImageBlend", "blend_mode"): ["normal", "multiply", "screen", "overlay", "soft_light", "difference"],
    ("ImageQuantize", "dither"): ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"],
    ("ImageStitch", "direction"): ["right", "down", "left", "up"],
    ("ImageStitch", "spacing_color"): ["white", "black", "red", "green", "blue"],
    ("SaveAnimatedWEBP", "method"): ["default", "fastest", "slowest"],
    ("LoadImageMask", "channel"): ["alpha", "red", "green", "blue"],
    ("ImageToMask", "channel"): ["red", "green", "blue", "alpha"],
    ("LatentConcat", "dim"): ["x", "-x", "y", "-y", "t", "-t"],
    ("LatentCut", "dim"): ["x", "y", "t"],
    ("ResizeAndPadImage", "padding_color"): ["white", "black"],
    ("ResizeAndPadImage", "interpolation"): ["area", "bicubic", "nearest-exact", "bilinear", "lanczos"],
    ("ImageScaleToMaxDimension", "upscale_method"): ["area", "lanczos", "bilinear", "nearest-exact", "bilinear",
                                                     "bicubic"],
    ("PorterDuffImageComposite", "mode"): ["ADD", "CLEAR", "DARKEN", "DST", "DST_ATOP", "DST_IN", "DST_OUT",
                                           "DST_OVER", "LIGHTEN", "MULTIPLY", "OVERLAY", "SCREEN", "SRC",
                                           "SRC_ATOP", "SRC_IN", "SRC_OUT", "SRC_OVER", "XOR"],
    ("MaskComposite", "operation"): ["multiply", "add", "subtract", "and", "or", "xor"],
    ("Morphology", "operation"): ["erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat"],
}

DISPLAY = {"ImagePadForOutpaint": "Pad Image for Outpainting", "LatentComposite": "Latent Composite",
           "LatentBlend": "Latent Blend", "LatentRotate": "Rotate Latent", "LatentFlip": "Flip Latent",
           "LatentCrop": "Crop Latent", "RebatchLatents": "Rebatch Latents", "RebatchImages": "Rebatch Images",
           "ImageBlend": "Image Blend", "ImageBlur": "Image Blur", "ImageQuantize": "Image Quantize",
           "ImageSharpen": "Image Sharpen", "ImageScaleToTotalPixels": "Scale Image to Total Pixels",
           "GetImageSize": "Get Image Size", "ImageStitch": "Image Stitch", "LoadImageMask": "Load Image (as Mask)",
           "MaskToImage": "Convert Mask to Image", "ImageToMask": "Convert Image to Mask",
           "Morphology": "ImageMorphology", "PorterDuffImageComposite": "Porter-Duff Image Composite",
           "SplitImageWithAlpha": "Split Image with Alpha", "JoinImageWithAlpha": "Join Image with Alpha"}


@pytest.fixture(scope="module")
def object_info(tmp_path_factory):
    return make_runtime(tmp_path_factory.mktemp("info")).registry.object_info()


def _default(entry: list) -> object:
    return entry[1].get("default") if len(entry) > 1 else None


@pytest.mark.parametrize("name", sorted(SPEC))
def test_object_info_entry_matches_comfyui(object_info, name):
    category, outputs, required, optional = SPEC[name]
    info = object_info[name]
    assert info["category"] == category
    assert info["output"] == outputs
    assert list(info["input"]["required"]) == list(required)
    assert list(info["input"].get("optional", {})) == list(optional)
    for section, expected in (("required", required), ("optional", optional)):
        for input_name, default in expected.items():
            assert _default(info["input"][section][input_name]) == default, (name, input_name)
    assert info["display_name"] == DISPLAY.get(name, name)


@pytest.mark.parametrize("key", sorted(COMBOS))
def test_combo_choices_match_comfyui(object_info, key):
    name, input_name = key
    entry = object_info[name]["input"]["required"][input_name]
    choices = entry[0] if isinstance(entry[0], list) else entry[1]["options"]
    assert choices == COMBOS[key]


def test_list_nodes_and_output_names(object_info):
    assert object_info["RebatchLatents"]["output_is_list"] == [True]
    assert object_info["RebatchImages"]["output_is_list"] == [True]
    assert object_info["GetImageSize"]["output_name"] == ["width", "height", "batch_size"]
    assert object_info["SaveImageWebsocket"]["output_node"] is True
    assert object_info["LatentApplyOperation"]["experimental"] is True
