"""Operations on SIGMAS values (1-D descending noise-level tensors): split, flip, extend.

These are what ComfyUI's sigma nodes do, so schedules can be cut between two samplers
(hires fix, refiners) or reshaped by hand. Every function returns a new tensor.
"""

from __future__ import annotations

import math

import torch

SPACINGS = ("linear", "cosine", "sine")


def split_at_step(sigmas: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ_0…σ_step, σ_step…σ_end): the two halves share the boundary sigma."""
    return sigmas[: step + 1].clone(), sigmas[step:].clone()


def split_at_denoise(sigmas: torch.Tensor, denoise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split so the low half does the last k = round(steps·denoise) steps: SplitSigmas at step n−k.
    ComfyUI's slicing is kept for k = 0: the high half is then empty and the low half just the
    final sigma."""
    steps = max(sigmas.shape[-1] - 1, 0)
    low_steps = round(steps * denoise)
    return sigmas[:-low_steps].clone(), sigmas[-(low_steps + 1):].clone()


def flip(sigmas: torch.Tensor) -> torch.Tensor:
    """Reverse the schedule (for inversion); a leading 0 becomes 1e-4 so σ stays positive."""
    if len(sigmas) == 0:
        return sigmas.clone()
    flipped = sigmas.flip(0)
    if flipped[0] == 0:
        flipped[0] = 0.0001
    return flipped


def set_first(sigmas: torch.Tensor, sigma: float) -> torch.Tensor:
    out = sigmas.clone()
    out[0] = sigma
    return out


def extend_intermediate(sigmas: torch.Tensor, steps: int, start_at_sigma: float, end_at_sigma: float,
                        spacing: str = "linear") -> torch.Tensor:
    """Insert ``steps − 1`` extra sigmas inside every step whose starting σ lies in
    [end_at_sigma, start_at_sigma] (a negative start means no upper bound).

    ``spacing`` places them along the step: evenly (linear), bunched towards the next σ (cosine:
    sin(πu/2)) or towards the current one (sine: 1 − cos(πu/2)).
    """
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    upper = math.inf if start_at_sigma < 0 else start_at_sigma
    u = torch.linspace(0, 1, steps + 1)[1:-1]
    if spacing == "cosine":
        u = torch.sin(u * math.pi / 2)
    elif spacing == "sine":
        u = 1 - torch.cos(u * math.pi / 2)
    out: list[float] = []
    for current, following in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        out.append(current)
        if end_at_sigma <= current <= upper:
            out.extend((u * (following - current) + current).tolist())
    if len(sigmas) > 0:
        out.append(float(sigmas[-1]))
    return torch.tensor(out, dtype=torch.float32)
