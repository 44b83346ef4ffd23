"""Hint images from photos and drawings (OpenCV): Canny edges, scribble/lineart lines, grayscale depth.

Images are IMAGE tensors [B,H,W,C] in 0..1; each result is a 3-channel IMAGE a ControlNet takes
as its hint (white features on black, as the models were trained).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

# ComfyUI's Canny (kornia) blurs with a 5×5 Gaussian of σ 1 before the Sobel gradients.
CANNY_BLUR_KERNEL = 5
CANNY_BLUR_SIGMA = 1.0


def _gray_u8(frame: torch.Tensor) -> np.ndarray:
    rgb = np.clip(frame[..., :3].float().cpu().numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rgb.shape[-1] == 1:
        return rgb[..., 0]
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _as_image(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 or float single-channel frames → IMAGE with the channel repeated 3×."""
    stacked = np.stack([f.astype(np.float32) / (255.0 if f.dtype == np.uint8 else 1.0) for f in frames])
    return torch.from_numpy(stacked)[..., None].repeat(1, 1, 1, 3)


def canny(image: torch.Tensor, low_threshold: float, high_threshold: float) -> torch.Tensor:
    """Canny edges; thresholds on the gradient magnitude of the 0..1 image (ComfyUI's scale)."""
    if not 0 < low_threshold <= high_threshold:
        raise ValueError("Canny needs 0 < low_threshold ≤ high_threshold")
    frames = []
    for frame in image:
        gray = cv2.GaussianBlur(_gray_u8(frame), (CANNY_BLUR_KERNEL, CANNY_BLUR_KERNEL), CANNY_BLUR_SIGMA)
        frames.append(cv2.Canny(gray, low_threshold * 255.0, high_threshold * 255.0, L2gradient=True))
    return _as_image(frames)


def scribble(image: torch.Tensor, threshold: float, invert: bool) -> torch.Tensor:
    """Binary lines: pixels darker than ``threshold`` (a drawing on paper, ``invert``) or brighter."""
    frames = []
    for frame in image:
        mode = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
        _, lines = cv2.threshold(_gray_u8(frame), threshold * 255.0, 255, mode)
        frames.append(lines)
    return _as_image(frames)


def lineart(image: torch.Tensor, block_size: int, offset: float) -> torch.Tensor:
    """Dark strokes of uneven lighting → white lines on black (adaptive Gaussian threshold).

    ``block_size`` (odd, ≥ 3) is the neighbourhood a pixel is compared with; ``offset`` (0..1)
    how much darker than it a pixel must be to count as a line.
    """
    if block_size < 3 or block_size % 2 == 0:
        raise ValueError("block_size must be odd and at least 3")
    frames = [
        cv2.adaptiveThreshold(_gray_u8(frame), 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV,
                              block_size, offset * 255.0)
        for frame in image
    ]
    return _as_image(frames)


def grayscale_depth(image: torch.Tensor, invert: bool, normalize: bool) -> torch.Tensor:
    """A depth map already drawn as an image: its luminance (near = white), optionally inverted and
    stretched to the full 0..1 range per image."""
    frames = []
    for frame in image:
        gray = _gray_u8(frame).astype(np.float32) / 255.0
        if invert:
            gray = 1.0 - gray
        if normalize:
            low, high = float(gray.min()), float(gray.max())
            gray = (gray - low) / (high - low) if high > low else np.zeros_like(gray)
        frames.append(gray)
    return _as_image(frames)
