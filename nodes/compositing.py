"""Alpha compositing nodes (ComfyUI's nodes_compositing.py): Porter-Duff composite, and splitting
an RGBA image into RGB + MASK or joining them back. MASK is 1 where the image is transparent."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffusion import image_ops, porter_duff


def _resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[H',W'] -> [H,W] (bicubic, centre crop), as ComfyUI resizes mismatched alphas."""
    if mask.shape[-2:] == (height, width):
        return mask
    return image_ops.resize_channels_first(mask[None, None], width, height, "bicubic", "center")[0, 0]


class PorterDuffImageComposite:
    CATEGORY = "mask/compositing"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "composite"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("IMAGE",), "source_alpha": ("MASK",), "destination": ("IMAGE",),
                             "destination_alpha": ("MASK",),
                             "mode": (list(porter_duff.MODES), {"default": "DST"})}}

    def composite(self, source, source_alpha, destination, destination_alpha, mode):
        """Per batch item (the shortest input sets the count); everything is fitted to the destination."""
        images, masks = [], []
        for src, src_mask, dst, dst_mask in zip(source, source_alpha, destination, destination_alpha):
            height, width = dst.shape[:2]
            dst_mask = _resize_mask(dst_mask, height, width)
            if src.shape != dst.shape:
                src = image_ops.scale_images(src[None], width, height, "bicubic", "center")[0]
            src_mask = _resize_mask(src_mask, height, width)
            image, mask = porter_duff.composite(src, src_mask, dst, dst_mask, mode)
            images.append(image)
            masks.append(mask)
        return (torch.stack(images), torch.stack(masks))


class SplitImageWithAlpha:
    CATEGORY = "mask/compositing"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def split(self, image):
        alpha = image[..., 3] if image.shape[-1] > 3 else torch.ones_like(image[..., 0])
        return (image[..., :3].clone(), 1.0 - alpha)


class JoinImageWithAlpha:
    CATEGORY = "mask/compositing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "join"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "alpha": ("MASK",)}}

    def join(self, image, alpha):
        mask = alpha.reshape((-1, 1, alpha.shape[-2], alpha.shape[-1]))
        mask = F.interpolate(mask, size=image.shape[1:3], mode="bilinear")[:, 0]
        count = min(image.shape[0], mask.shape[0])
        return (torch.cat([image[:count, ..., :3], (1.0 - mask[:count])[..., None]], dim=-1),)


NODE_CLASS_MAPPINGS = {
    "PorterDuffImageComposite": PorterDuffImageComposite,
    "SplitImageWithAlpha": SplitImageWithAlpha,
    "JoinImageWithAlpha": JoinImageWithAlpha,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "PorterDuffImageComposite": "Porter-Duff Image Composite",
    "SplitImageWithAlpha": "Split Image with Alpha",
    "JoinImageWithAlpha": "Join Image with Alpha",
}
