"""Porter-Duff compositing of straight-alpha images (ComfyUI's PorterDuffImageComposite modes).

Alpha arrives and leaves as ComfyUI's MASK convention (1 = transparent). The operators work on
premultiplied colour: the twelve classic ones as ``out = Fa·src + Fb·dst`` with the fractions of
Porter & Duff (1984), plus ADD (clamped sum) and ComfyUI's separable blend modes.
"""

from __future__ import annotations

from typing import Callable

import torch

Tensor = torch.Tensor

# mode -> (Fa, Fb) as functions of (source alpha, destination alpha)
_FRACTIONS: dict[str, Callable[[Tensor, Tensor], tuple[Tensor | float, Tensor | float]]] = {
    "CLEAR": lambda a_s, a_d: (0.0, 0.0),
    "SRC": lambda a_s, a_d: (1.0, 0.0),
    "DST": lambda a_s, a_d: (0.0, 1.0),
    "SRC_OVER": lambda a_s, a_d: (1.0, 1 - a_s),
    "DST_OVER": lambda a_s, a_d: (1 - a_d, 1.0),
    "SRC_IN": lambda a_s, a_d: (a_d, 0.0),
    "DST_IN": lambda a_s, a_d: (0.0, a_s),
    "SRC_OUT": lambda a_s, a_d: (1 - a_d, 0.0),
    "DST_OUT": lambda a_s, a_d: (0.0, 1 - a_s),
    "SRC_ATOP": lambda a_s, a_d: (a_d, 1 - a_s),
    "DST_ATOP": lambda a_s, a_d: (1 - a_d, a_s),
    "XOR": lambda a_s, a_d: (1 - a_d, 1 - a_s),
}


def _blend(mode: str, s: Tensor, d: Tensor, a_s: Tensor, a_d: Tensor) -> tuple[Tensor, Tensor]:
    """ComfyUI's non-Porter-Duff modes on premultiplied colour: (colour, alpha)."""
    union = a_s + a_d - a_s * a_d
    if mode == "ADD":
        return (s + d).clamp(0, 1), (a_s + a_d).clamp(0, 1)
    if mode == "MULTIPLY":
        return s * d, a_s * a_d
    if mode == "SCREEN":
        return s + d - s * d, union
    if mode == "OVERLAY":
        return torch.where(2 * d < a_d, 2 * s * d, a_s * a_d - 2 * (a_d - s) * (a_s - d)), union
    if mode in ("DARKEN", "LIGHTEN"):
        pick = torch.minimum if mode == "DARKEN" else torch.maximum
        return (1 - a_d) * s + (1 - a_s) * d + pick(s, d), union
    raise ValueError(f"unknown Porter-Duff mode {mode!r}; choose one of {MODES}")


MODES = ("ADD", "CLEAR", "DARKEN", "DST", "DST_ATOP", "DST_IN", "DST_OUT", "DST_OVER", "LIGHTEN", "MULTIPLY",
         "OVERLAY", "SCREEN", "SRC", "SRC_ATOP", "SRC_IN", "SRC_OUT", "SRC_OVER", "XOR")


def composite(source: Tensor, source_mask: Tensor, destination: Tensor, destination_mask: Tensor,
              mode: str) -> tuple[Tensor, Tensor]:
    """Images [..., H, W, C] with masks [..., H, W] (same sizes) -> (image, mask)."""
    a_s, a_d = (1 - source_mask)[..., None], (1 - destination_mask)[..., None]
    s, d = source * a_s, destination * a_d
    if mode in _FRACTIONS:
        fa, fb = _FRACTIONS[mode](a_s, a_d)
        colour, alpha = fa * s + fb * d, fa * a_s + fb * a_d
        alpha = alpha + torch.zeros_like(a_s)  # constant fractions still give a per-pixel alpha
    else:
        colour, alpha = _blend(mode, s, d, a_s, a_d)
    straight = torch.where(alpha > 1e-5, colour / alpha.clamp_min(1e-5), torch.zeros_like(colour)).clamp(0, 1)
    return straight, 1 - alpha[..., 0]
