"""Cheap live previews: latent → RGB with the family's linear factors, paced to a time budget."""

from __future__ import annotations

import time
from typing import Any

import torch

# Previews may take at most this fraction of the sampling time.
PREVIEW_BUDGET = 0.03


def latent_to_rgb(x0: torch.Tensor, latent_format: Any) -> torch.Tensor:
    """First batch item of a scaled latent ``[B,C,h,w]`` as uint8 RGB ``[h,w,3]`` (CPU)."""
    latent = x0[:1].detach().float().cpu()
    rgb = latent_format.to_rgb(latent)[0]  # [h, w, 3] in 0..1
    return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8)


class PreviewPacer:
    """Decides per step whether a preview fits the budget: previews are sent only while the time
    spent on them stays under ``budget`` of the time spent sampling. The first step and the last
    step always get one (a user sees something at once, and the final state)."""

    def __init__(self, budget: float = PREVIEW_BUDGET, clock=time.perf_counter) -> None:
        self.budget, self.clock = budget, clock
        self.started = clock()
        self.spent = 0.0

    def due(self, step: int, total: int) -> bool:
        if step == 0 or step >= total - 1:
            return True
        return self.spent <= self.budget * (self.clock() - self.started)

    def record(self, seconds: float) -> None:
        self.spent += seconds
