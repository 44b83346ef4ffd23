"""Image operations on ComfyUI's IMAGE ([B,H,W,C] float 0..1): resizing, compositing, blending,
blur/sharpen, palette quantization, outpaint padding and stitching. Inputs are never mutated.

``composite`` works on channels-first tensors and takes a pixel ``multiplier`` so the same
function places latents (8 pixels per cell) and images (1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")
DITHER_METHODS = ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16")
STITCH_DIRECTIONS = ("right", "down", "left", "up")
SPACING_COLORS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "red": (1.0, 0.0, 0.0),
                  "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


# ---- batches and channels -----------------------------------------------------------------
def repeat_to_batch(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """The first ``batch`` items, repeating the whole batch as often as needed."""
    if tensor.shape[0] == batch:
        return tensor
    repeats = math.ceil(batch / tensor.shape[0])
    return tensor.repeat(repeats, *([1] * (tensor.ndim - 1)))[:batch]


def match_channels(destination: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Give ``source`` the destination's channel count: drop extras, or add an opaque alpha."""
    wanted, have = destination.shape[-1], source.shape[-1]
    if have > wanted:
        source = source[..., :wanted]
    elif have < wanted:
        source = torch.cat([source, torch.ones(*source.shape[:-1], wanted - have, dtype=source.dtype)], dim=-1)
    return destination, source


# ---- resizing -----------------------------------------------------------------------------
def _center_crop(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    old_h, old_w = samples.shape[-2:]
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    return samples[..., y:old_h - y, x:old_w - x]


def _lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """PIL's Lanczos filter, one 8-bit image per batch item and channel-first tensor in/out."""
    frames = []
    for item in samples:
        array = np.clip(255.0 * item.movedim(0, -1).float().cpu().numpy(), 0, 255).astype(np.uint8)
        if array.shape[-1] == 1:
            array = array[..., 0]
        resized = np.asarray(Image.fromarray(array).resize((width, height), Image.LANCZOS), dtype=np.float32)
        frames.append(torch.from_numpy(resized.copy() / 255.0).reshape(height, width, -1).movedim(-1, 0))
    return torch.stack(frames).to(samples.dtype)


def resize_channels_first(samples: torch.Tensor, width: int, height: int, method: str,
                          crop: str = "disabled") -> torch.Tensor:
    """Resize [B,C,H,W]; ``crop="center"`` first crops to the target aspect ratio."""
    if method not in UPSCALE_METHODS:
        raise ValueError(f"unknown upscale method {method!r}; choose one of {UPSCALE_METHODS}")
    if crop == "center":
        samples = _center_crop(samples, width, height)
    if method == "lanczos":
        return _lanczos(samples, width, height)
    kwargs = {"antialias": False} if method in ("bilinear", "bicubic") else {}
    return F.interpolate(samples.float(), size=(height, width), mode=method, **kwargs).to(samples.dtype)


def scale_images(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize IMAGE [B,H,W,C] (values clamped to 0..1 after bicubic overshoot)."""
    scaled = resize_channels_first(image.movedim(-1, 1), width, height, method, crop)
    return scaled.movedim(1, -1).clamp(0.0, 1.0)


def total_pixels_size(width: int, height: int, megapixels: float) -> tuple[int, int]:
    """The size with the same aspect ratio and about ``megapixels`` * 1024² pixels."""
    scale = math.sqrt(int(megapixels * 1024 * 1024) / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def max_dimension_size(width: int, height: int, largest: int) -> tuple[int, int]:
    """The size whose longer side is ``largest``, aspect ratio kept (rounded)."""
    if height > width:
        return round(width / height * largest), largest
    if width > height:
        return largest, round(height / width * largest)
    return largest, largest


def resize_and_pad(image: torch.Tensor, width: int, height: int, pad_value: float, method: str) -> torch.Tensor:
    """Fit the image inside width x height (aspect kept, sizes truncated) and centre it on a
    ``pad_value`` background."""
    batch, old_h, old_w, channels = image.shape
    scale = min(width / old_w, height / old_h)
    new_w, new_h = int(old_w * scale), int(old_h * scale)
    canvas = torch.full((batch, height, width, channels), pad_value, dtype=image.dtype)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    resized = resize_channels_first(image.movedim(-1, 1), new_w, new_h, method).movedim(1, -1)
    canvas[:, top:top + new_h, left:left + new_w] = resized
    return canvas


def add_noise(image: torch.Tensor, seed: int, strength: float) -> torch.Tensor:
    """Gaussian noise from a CPU generator seeded with ``seed`` (as ComfyUI), clamped to 0..1."""
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed), device="cpu")
    return (image + strength * noise.to(image)).clamp(0.0, 1.0)


# ---- compositing and blending -------------------------------------------------------------
def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, mask: torch.Tensor | None = None,
              multiplier: int = 8, resize_source: bool = False) -> torch.Tensor:
    """Paste ``source`` [B,C,h,w] onto ``destination`` [B,C,H,W] at pixel (x, y), through ``mask``.

    ``mask`` (any [..., h', w']) is resized bilinearly to the source and blends
    ``mask * source + (1 - mask) * destination``; parts falling outside are cut off.
    """
    output = destination.clone()
    source = source.to(destination.dtype)
    if resize_source:
        source = F.interpolate(source, size=destination.shape[-2:], mode="bilinear")
    source = repeat_to_batch(source, destination.shape[0])
    left, top = max(0, x) // multiplier, max(0, y) // multiplier
    visible_h = min(source.shape[-2], destination.shape[-2] - top)
    visible_w = min(source.shape[-1], destination.shape[-1] - left)
    if visible_h <= 0 or visible_w <= 0:
        return output
    if mask is None:
        weight = torch.ones_like(source[:, :1])
    else:
        weight = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).to(destination.dtype)
        weight = repeat_to_batch(F.interpolate(weight, size=source.shape[-2:], mode="bilinear"), source.shape[0])
    weight = weight[..., :visible_h, :visible_w]
    region = output[..., top:top + visible_h, left:left + visible_w]
    output[..., top:top + visible_h, left:left + visible_w] = (
        weight * source[..., :visible_h, :visible_w] + (1.0 - weight) * region)
    return output


def _soft_light_g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


def blend(image1: torch.Tensor, image2: torch.Tensor, blend_factor: float, mode: str) -> torch.Tensor:
    """``image1`` mixed with ``mode(image1, image2)`` by ``blend_factor`` (W3C compositing formulas);
    image2 is resized (bicubic, center crop) to image1 when their shapes differ."""
    if mode not in BLEND_MODES:
        raise ValueError(f"blend_mode must be one of {BLEND_MODES}, not {mode!r}")
    image1, image2 = match_channels(image1, image2)
    if image1.shape != image2.shape:
        image2 = repeat_to_batch(scale_images(image2, image1.shape[2], image1.shape[1], "bicubic", "center"),
                                 image1.shape[0])
    a, b = image1, image2
    if mode == "normal":
        mixed = b
    elif mode == "multiply":
        mixed = a * b
    elif mode == "screen":
        mixed = 1 - (1 - a) * (1 - b)
    elif mode == "overlay":
        mixed = torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    elif mode == "soft_light":
        mixed = torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (_soft_light_g(a) - a))
    else:  # difference, as ComfyUI: a - b, so the clamp keeps only where a is brighter
        mixed = a - b
    return (a * (1 - blend_factor) + mixed * blend_factor).clamp(0.0, 1.0)


# ---- filters ------------------------------------------------------------------------------
def gaussian_kernel(kernel_size: int, sigma: float, device: torch.device | str | None = None) -> torch.Tensor:
    """ComfyUI's normalised Gaussian: positions span -1..1 across the kernel, so ``sigma`` is
    relative to the radius, not in pixels."""
    axis = torch.linspace(-1, 1, kernel_size, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    kernel = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def convolve_reflect(samples: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of [B,C,H,W] with one odd square ``kernel``, mirroring at the edges."""
    radius = kernel.shape[-1] // 2
    channels = samples.shape[1]
    weight = kernel.to(samples.dtype).expand(channels, 1, *kernel.shape)
    padded = F.pad(samples, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(padded, weight, groups=channels)


def blur(image: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    if radius <= 0:
        return image
    kernel = gaussian_kernel(2 * radius + 1, sigma)
    return convolve_reflect(image.movedim(-1, 1), kernel).movedim(1, -1)


def sharpen_kernel(radius: int, sigma: float, alpha: float) -> torch.Tensor:
    """An unsharp kernel: minus ``10 * alpha`` Gaussians, with the centre making it sum to 1."""
    kernel = gaussian_kernel(2 * radius + 1, sigma) * -(alpha * 10)
    kernel[radius, radius] += 1.0 - kernel.sum()
    return kernel


def sharpen(image: torch.Tensor, radius: int, sigma: float, alpha: float) -> torch.Tensor:
    if radius <= 0:
        return image
    sharpened = convolve_reflect(image.movedim(-1, 1), sharpen_kernel(radius, sigma, alpha))
    return sharpened.movedim(1, -1).clamp(0.0, 1.0)


# ---- palette quantization -----------------------------------------------------------------
def bayer_matrix(order: int) -> np.ndarray:
    """The ``order`` x ``order`` ordered-dither threshold map, centred on 0 (values in ±0.5)."""
    matrix = np.zeros((1, 1))
    while matrix.shape[0] < order:
        matrix = np.block([[4 * matrix, 4 * matrix + 2], [4 * matrix + 3, 4 * matrix + 1]])
    return (matrix + 0.5) / matrix.size - 0.5


def quantize(image: torch.Tensor, colors: int, dither: str) -> torch.Tensor:
    """Reduce every image to a ``colors`` palette chosen by PIL's median cut; dither with PIL's
    Floyd-Steinberg or an ordered Bayer map spread over one palette step."""
    if dither not in DITHER_METHODS:
        raise ValueError(f"dither must be one of {DITHER_METHODS}, not {dither!r}")
    frames = []
    for item in image:
        rgb = np.clip(255.0 * item[..., :3].float().cpu().numpy(), 0, 255).astype(np.uint8)
        picture = Image.fromarray(rgb, "RGB")
        palette = picture.quantize(colors=colors)
        if dither.startswith("bayer"):
            order = int(dither.split("-")[1])
            spread = 2 * 256 / (len(palette.getpalette()) // 3)
            tile = spread * bayer_matrix(order)
            height, width = rgb.shape[:2]
            reps = (math.ceil(height / order), math.ceil(width / order))
            # + 0.5 so the truncation to 8 bits rounds
            shifted = rgb.astype(np.float32) + np.tile(tile, reps)[:height, :width, None] + 0.5
            picture = Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8), "RGB")
            method = Image.Dither.NONE
        else:
            method = Image.Dither.FLOYDSTEINBERG if dither == "floyd-steinberg" else Image.Dither.NONE
        reduced = picture.quantize(palette=palette, dither=method).convert("RGB")
        frames.append(torch.from_numpy(np.asarray(reduced, dtype=np.float32) / 255.0))
    return torch.stack(frames).to(image.dtype)


# ---- outpainting and layout ---------------------------------------------------------------
def pad_for_outpaint(image: torch.Tensor, left: int, top: int, right: int, bottom: int,
                     feathering: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow the canvas with grey (0.5) borders; the mask is 1 on the new border and, inside the
    old image, ((feathering - d) / feathering)² within ``feathering`` pixels of a padded side
    (d = distance to the nearest padded side), so the seam is repainted softly."""
    batch, height, width, channels = image.shape
    canvas = torch.full((batch, height + top + bottom, width + left + right, channels), 0.5, dtype=image.dtype)
    canvas[:, top:top + height, left:left + width] = image
    mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
    inner = torch.zeros((height, width), dtype=torch.float32)
    if feathering > 0 and 2 * feathering < height and 2 * feathering < width:
        rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
        cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
        unpadded_h, unpadded_w = torch.full_like(rows, height), torch.full_like(cols, width)
        distance = torch.stack([rows if top else unpadded_h, height - rows if bottom else unpadded_h,
                                cols if left else unpadded_w, width - cols if right else unpadded_w]).amin(0)
        inner = torch.where(distance < feathering, ((feathering - distance) / feathering) ** 2, inner)
    mask[top:top + height, left:left + width] = inner
    return canvas, mask[None]


def _pad_to(image: torch.Tensor, size: int, dim: int, value: float) -> torch.Tensor:
    """Centre ``image`` along ``dim`` (1 = height, 2 = width) in ``size`` pixels of ``value``."""
    missing = size - image.shape[dim]
    if missing <= 0:
        return image
    before, after = missing // 2, missing - missing // 2
    pad = (0, 0, before, after) if dim == 2 else (0, 0, 0, 0, before, after)
    return F.pad(image, pad, value=value)


def stitch(image1: torch.Tensor, image2: torch.Tensor, direction: str, match_image_size: bool,
           spacing_width: int, spacing_color: str) -> torch.Tensor:
    """Put ``image2`` on the ``direction`` side of ``image1`` (batches padded with their last item).

    Matching resizes image2 (Lanczos) to image1's height (left/right) or width (up/down), keeping
    its aspect ratio; otherwise the smaller image is centred on a band of the spacing colour's
    grey level (0 for a coloured spacer). The spacer is rounded up to an even width.
    """
    if direction not in STITCH_DIRECTIONS:
        raise ValueError(f"direction must be one of {STITCH_DIRECTIONS}, not {direction!r}")
    batch = max(image1.shape[0], image2.shape[0])
    image1, image2 = (torch.cat([im, im[-1:].repeat(batch - im.shape[0], 1, 1, 1)]) for im in (image1, image2))
    horizontal = direction in ("left", "right")
    if match_image_size:
        h1, w1 = image1.shape[1:3]
        h2, w2 = image2.shape[1:3]
        target = (int(h1 * w2 / h2), h1) if horizontal else (w1, int(w1 * h2 / w2))
        image2 = scale_images(image2, target[0], target[1], "lanczos")
    color = SPACING_COLORS[spacing_color]
    grey = color[0] if len(set(color)) == 1 else 0.0
    if not match_image_size:
        dim = 1 if horizontal else 2
        size = max(image1.shape[dim], image2.shape[dim])
        image1, image2 = _pad_to(image1, size, dim, grey), _pad_to(image2, size, dim, grey)
    channels = max(image1.shape[-1], image2.shape[-1])
    image1, image2 = (torch.cat([im, torch.ones(*im.shape[:-1], channels - im.shape[-1], dtype=im.dtype)], dim=-1)
                      for im in (image1, image2))
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing_width > 0:
        spacing_width += spacing_width % 2
        shape = ((batch, image1.shape[1], spacing_width, channels) if horizontal
                 else (batch, spacing_width, image1.shape[2], channels))
        spacer = torch.zeros(shape, dtype=image1.dtype)
        spacer[..., :min(3, channels)] = torch.tensor(color[:min(3, channels)], dtype=image1.dtype)
        if channels == 4:
            spacer[..., 3] = 1.0
        parts.insert(1, spacer)
    return torch.cat(parts, dim=2 if horizontal else 1)
