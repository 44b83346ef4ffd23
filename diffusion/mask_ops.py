"""Mask operations (ComfyUI's MASK: float [B,H,W] in 0..1): conversion, cropping, compositing,
feathering, growing, thresholding and grey-level morphology. Inputs are never mutated.

Morphology is scipy.ndimage's min/max filters with ``mode="nearest"``: with a flat structuring
element that equals ignoring the pixels outside the image (kornia's "geodesic" border, which
ComfyUI's Morphology node uses).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch

IMAGE_CHANNELS = ("red", "green", "blue", "alpha")
MASK_OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")
MORPHOLOGY_OPERATIONS = ("erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat")


def as_batch(mask: torch.Tensor) -> torch.Tensor:
    """A mask of any leading shape ([H,W], [B,H,W], [B,1,H,W]) as [B,H,W]."""
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


def to_image(mask: torch.Tensor) -> torch.Tensor:
    """MASK -> grey IMAGE [B,H,W,3]."""
    return as_batch(mask)[..., None].expand(-1, -1, -1, 3).clone()


def from_image(image: torch.Tensor, channel: str) -> torch.Tensor:
    """One channel of an IMAGE [B,H,W,C] as a MASK; a missing alpha channel reads as 0."""
    index = IMAGE_CHANNELS.index(channel)
    if index >= image.shape[-1]:
        raise ValueError(f"the image has {image.shape[-1]} channels; it has no {channel} channel")
    return image[..., index].clone()


def from_color(image: torch.Tensor, color: int) -> torch.Tensor:
    """1.0 where the pixel's 8-bit RGB value is exactly ``color`` (0xRRGGBB), else 0.0."""
    rgb = (image[..., :3].clamp(0.0, 1.0) * 255.0).round().to(torch.int64)
    packed = (rgb[..., 0] << 16) + (rgb[..., 1] << 8) + rgb[..., 2]
    return (packed == color).float()


def solid(value: float, width: int, height: int) -> torch.Tensor:
    return torch.full((1, height, width), float(value), dtype=torch.float32)


def crop(mask: torch.Tensor, x: int, y: int, width: int, height: int) -> torch.Tensor:
    return as_batch(mask)[:, y:y + height, x:x + width].clone()


def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, operation: str) -> torch.Tensor:
    """Combine ``source`` into ``destination`` at (x, y); the part outside stays as it was.

    The boolean operations round both sides to 0/1 first. The result is clamped to 0..1.
    """
    if operation not in MASK_OPERATIONS:
        raise ValueError(f"operation must be one of {MASK_OPERATIONS}, not {operation!r}")
    output = as_batch(destination).clone()
    source = as_batch(source)
    bottom = min(y + source.shape[-2], output.shape[-2])
    right = min(x + source.shape[-1], output.shape[-1])
    if bottom <= y or right <= x:
        return output.clamp(0.0, 1.0)
    src = source[:, :bottom - y, :right - x]
    dst = output[:, y:bottom, x:right]
    if operation == "multiply":
        combined = dst * src
    elif operation == "add":
        combined = dst + src
    elif operation == "subtract":
        combined = dst - src
    else:
        a, b = dst.round().bool(), src.round().bool()
        combined = {"and": a & b, "or": a | b, "xor": a ^ b}[operation].float()
    output[:, y:bottom, x:right] = combined
    return output.clamp(0.0, 1.0)


def _ramp(count: int, size: int) -> torch.Tensor:
    """Feather factors for ``size`` pixels: the outermost ``count`` go 1/count, 2/count, ... 1."""
    ramp = torch.ones(size)
    count = min(count, size)
    if count > 0:
        ramp[:count] = torch.arange(1, count + 1, dtype=torch.float32) / count
    return ramp


def feather(mask: torch.Tensor, left: int, top: int, right: int, bottom: int) -> torch.Tensor:
    """Fade the mask linearly to the given edges: the outermost pixel keeps 1/n of its value.

    ComfyUI's loop scales column 0 instead of the last column for the first right/bottom step
    (index ``-0``); here each edge gets the same ramp, mirrored.
    """
    output = as_batch(mask).clone()
    height, width = output.shape[-2:]
    columns = _ramp(left, width) * _ramp(right, width).flip(0)
    rows = _ramp(top, height) * _ramp(bottom, height).flip(0)
    return output * rows[:, None] * columns[None, :]


def grow(mask: torch.Tensor, expand: int, tapered_corners: bool = True) -> torch.Tensor:
    """Dilate (``expand`` > 0) or erode (< 0) by |expand| pixels.

    Tapered corners grow by a 3x3 cross per step (a diamond overall); square corners by a 3x3
    square, which is one (2n+1)-wide square filter.
    """
    batch = as_batch(mask).detach().float().cpu().numpy()
    steps = abs(int(expand))
    if steps == 0:
        return torch.from_numpy(batch.copy())
    filter_fn = scipy.ndimage.maximum_filter if expand > 0 else scipy.ndimage.minimum_filter
    if tapered_corners:
        cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)[None]
        for _ in range(steps):
            batch = filter_fn(batch, footprint=cross, mode="nearest")
    else:
        batch = filter_fn(batch, size=(1, 2 * steps + 1, 2 * steps + 1), mode="nearest")
    return torch.from_numpy(np.ascontiguousarray(batch))


def threshold(mask: torch.Tensor, value: float) -> torch.Tensor:
    return (mask > value).float()


def morphology(image: torch.Tensor, operation: str, kernel_size: int) -> torch.Tensor:
    """Grey-level morphology of an IMAGE [B,H,W,C] with a flat square kernel, per channel."""
    if operation not in MORPHOLOGY_OPERATIONS:
        raise ValueError(f"operation must be one of {MORPHOLOGY_OPERATIONS}, not {operation!r}")
    if kernel_size < 1:
        raise ValueError("kernel_size must be at least 1")
    array = image.detach().float().cpu().numpy()
    size = (1, kernel_size, kernel_size, 1)

    def erode(x: np.ndarray) -> np.ndarray:
        return scipy.ndimage.minimum_filter(x, size=size, mode="nearest")

    def dilate(x: np.ndarray) -> np.ndarray:
        return scipy.ndimage.maximum_filter(x, size=size, mode="nearest")

    if operation == "erode":
        result = erode(array)
    elif operation == "dilate":
        result = dilate(array)
    elif operation == "open":
        result = dilate(erode(array))
    elif operation == "close":
        result = erode(dilate(array))
    elif operation == "gradient":
        result = dilate(array) - erode(array)
    elif operation == "top_hat":
        result = array - dilate(erode(array))
    else:  # bottom_hat
        result = erode(dilate(array)) - array
    return torch.from_numpy(np.ascontiguousarray(result)).to(image.dtype)
