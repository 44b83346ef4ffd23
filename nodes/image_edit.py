"""Image editing nodes: outpaint padding, scaling, blending, filters, compositing, batches and
transforms (ComfyUI's nodes.py, nodes_images.py, nodes_post_processing.py, nodes_mask.py and
nodes_rebatch.py interfaces); the work is in diffusion.image_ops."""

from __future__ import annotations

import torch

from diffusion import image_ops
from nodes import MAX_RESOLUTION

_ROTATIONS = ["none", "90 degrees", "180 degrees", "270 degrees"]
_FLIPS = ["x-axis: vertically", "y-axis: horizontally"]


class ImagePadForOutpaint:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "expand_image"
    DESCRIPTION = "Adds grey borders to outpaint into; the mask covers them and fades into the image."

    @classmethod
    def INPUT_TYPES(cls):
        side = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
        return {"required": {"image": ("IMAGE",), "left": ("INT", side), "top": ("INT", side),
                             "right": ("INT", side), "bottom": ("INT", side),
                             "feathering": ("INT", {"default": 40, "min": 0, "max": MAX_RESOLUTION, "step": 1})}}

    def expand_image(self, image, left, top, right, bottom, feathering):
        return image_ops.pad_for_outpaint(image, left, top, right, bottom, feathering)


class ImageScaleToTotalPixels:
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "upscale_method": (list(image_ops.UPSCALE_METHODS),),
                             "megapixels": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01})}}

    def upscale(self, image, upscale_method, megapixels):
        width, height = image_ops.total_pixels_size(image.shape[2], image.shape[1], megapixels)
        return (image_ops.scale_images(image, width, height, upscale_method),)


class ImageScaleToMaxDimension:
    CATEGORY = "image/upscaling"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "upscale_method": (["area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"],),
                             "largest_size": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1})}}

    def upscale(self, image, upscale_method, largest_size):
        width, height = image_ops.max_dimension_size(image.shape[2], image.shape[1], largest_size)
        return (image_ops.scale_images(image, width, height, upscale_method),)


class ResizeAndPadImage:
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "resize_and_pad"

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}
        return {"required": {"image": ("IMAGE",), "target_width": ("INT", size), "target_height": ("INT", size),
                             "padding_color": (["white", "black"],),
                             "interpolation": (["area", "bicubic", "nearest-exact", "bilinear", "lanczos"],)}}

    def resize_and_pad(self, image, target_width, target_height, padding_color, interpolation):
        return (image_ops.resize_and_pad(image, target_width, target_height, 0.0 if padding_color == "black" else 1.0,
                                         interpolation),)


class ImageAddNoise:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "repeat"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                              "control_after_generate": True,
                                              "tooltip": "The random seed used for creating the noise."}),
                             "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})}}

    def repeat(self, image, seed, strength):
        return (image_ops.add_noise(image, seed, strength),)


class ImageBlend:
    CATEGORY = "image/postprocessing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "blend_images"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",),
                             "blend_factor": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                             "blend_mode": (list(image_ops.BLEND_MODES),)}}

    def blend_images(self, image1, image2, blend_factor, blend_mode):
        return (image_ops.blend(image1, image2, blend_factor, blend_mode),)


class ImageBlur:
    CATEGORY = "image/postprocessing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "blur"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "blur_radius": ("INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
                             "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1})}}

    def blur(self, image, blur_radius, sigma):
        return (image_ops.blur(image, blur_radius, sigma),)


class ImageSharpen:
    CATEGORY = "image/postprocessing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "sharpen"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "sharpen_radius": ("INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
                             "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.01}),
                             "alpha": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 5.0, "step": 0.01})}}

    def sharpen(self, image, sharpen_radius, sigma, alpha):
        return (image_ops.sharpen(image, sharpen_radius, sigma, alpha),)


class ImageQuantize:
    CATEGORY = "image/postprocessing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "quantize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "colors": ("INT", {"default": 256, "min": 1, "max": 256, "step": 1}),
                             "dither": (list(image_ops.DITHER_METHODS),)}}

    def quantize(self, image, colors, dither):
        return (image_ops.quantize(image, colors, dither),)


class ImageCompositeMasked:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "composite"

    @classmethod
    def INPUT_TYPES(cls):
        position = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}
        return {"required": {"destination": ("IMAGE",), "source": ("IMAGE",), "x": ("INT", position),
                             "y": ("INT", position), "resize_source": ("BOOLEAN", {"default": False})},
                "optional": {"mask": ("MASK",)}}

    def composite(self, destination, source, x, y, resize_source, mask=None):
        destination, source = image_ops.match_channels(destination, source)
        result = image_ops.composite(destination.movedim(-1, 1), source.movedim(-1, 1), x, y, mask, 1, resize_source)
        return (result.movedim(1, -1),)


class ImageFromBatch:
    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "frombatch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "batch_index": ("INT", {"default": 0, "min": 0, "max": 4095}),
                             "length": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def frombatch(self, image, batch_index, length):
        start = min(image.shape[0] - 1, batch_index)
        return (image[start:start + length].clone(),)


class RepeatImageBatch:
    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "repeat"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "amount": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def repeat(self, image, amount):
        return (image.repeat(amount, 1, 1, 1),)


class RebatchImages:
    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "rebatch"
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def rebatch(self, images, batch_size):
        """All images of every incoming batch, regrouped in batches of ``batch_size`` (same-size
        images only, as a batch must be)."""
        frames = torch.cat([frame for batch in images for frame in batch.split(1)])
        return (list(frames.split(batch_size[0])),)


class GetImageSize:
    CATEGORY = "image"
    RETURN_TYPES = ("INT", "INT", "INT")
    RETURN_NAMES = ("width", "height", "batch_size")
    FUNCTION = "get_size"
    DESCRIPTION = "Returns the width, height and batch size of the image."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}, "hidden": {"unique_id": "UNIQUE_ID"}}

    def get_size(self, image, unique_id=None):
        return (int(image.shape[2]), int(image.shape[1]), int(image.shape[0]))


class ImageStitch:
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "stitch"
    DESCRIPTION = "Stitches image2 to image1 in the given direction, optionally with spacing between them."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",),
                             "direction": (list(image_ops.STITCH_DIRECTIONS), {"default": "right"}),
                             "match_image_size": ("BOOLEAN", {"default": True}),
                             "spacing_width": ("INT", {"default": 0, "min": 0, "max": 1024, "step": 2}),
                             "spacing_color": (list(image_ops.SPACING_COLORS), {"default": "white"})},
                "optional": {"image2": ("IMAGE",)}}

    def stitch(self, image1, direction, match_image_size, spacing_width, spacing_color, image2=None):
        if image2 is None:
            return (image1,)
        return (image_ops.stitch(image1, image2, direction, match_image_size, spacing_width, spacing_color),)


class ImageRotate:
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "rotate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "rotation": (_ROTATIONS,)}}

    def rotate(self, image, rotation):
        # clockwise quarter turns, as ComfyUI (rot90 from the width axis towards the height axis)
        return (torch.rot90(image, k=_ROTATIONS.index(rotation), dims=[2, 1]),)


class ImageFlip:
    CATEGORY = "image/transform"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "flip"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "flip_method": (_FLIPS,)}}

    def flip(self, image, flip_method):
        return (torch.flip(image, dims=[1 if flip_method.startswith("x") else 2]),)


NODE_CLASS_MAPPINGS = {
    "ImagePadForOutpaint": ImagePadForOutpaint,
    "ImageScaleToTotalPixels": ImageScaleToTotalPixels,
    "ImageScaleToMaxDimension": ImageScaleToMaxDimension,
    "ResizeAndPadImage": ResizeAndPadImage,
    "ImageAddNoise": ImageAddNoise,
    "ImageBlend": ImageBlend,
    "ImageBlur": ImageBlur,
    "ImageSharpen": ImageSharpen,
    "ImageQuantize": ImageQuantize,
    "ImageCompositeMasked": ImageCompositeMasked,
    "ImageFromBatch": ImageFromBatch,
    "RepeatImageBatch": RepeatImageBatch,
    "RebatchImages": RebatchImages,
    "GetImageSize": GetImageSize,
    "ImageStitch": ImageStitch,
    "ImageRotate": ImageRotate,
    "ImageFlip": ImageFlip,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ImagePadForOutpaint": "Pad Image for Outpainting",
    "ImageScaleToTotalPixels": "Scale Image to Total Pixels",
    "ImageBlend": "Image Blend",
    "ImageBlur": "Image Blur",
    "ImageSharpen": "Image Sharpen",
    "ImageQuantize": "Image Quantize",
    "RebatchImages": "Rebatch Images",
    "GetImageSize": "Get Image Size",
    "ImageStitch": "Image Stitch",
}
