"""ComfyUI's `latent_preview` for node packs: the per-step callback KSampler uses (progress,
interrupt checks, latent previews as configured by --preview-method)."""

from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["prepare_callback"]


def prepare_callback(model: Any, steps: int, x0_output_dict: dict[str, Any] | None = None
                     ) -> Callable[[int, torch.Tensor, Any, int], None]:
    """`callback(step, x0, x, total_steps)` for comfy.sample; stores the last x0 in `x0_output_dict`."""
    from nodes.sampling import step_callback

    on_step = step_callback(model)

    def callback(step: int, x0: torch.Tensor, x: Any, total_steps: int) -> None:
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        on_step(step, total_steps, x0)

    return callback
