"""Attaching a hint to CONDITIONING (ComfyUI's ControlNetApply / ControlNetApplyAdvanced).

The inputs are never mutated: each entry's dict is copied and gets a ``copy()`` of the control
with the hint set, chained to the control it already had. Entries that had the same previous
control share one new control, so positive and negative run it in one batched call.
"""

from __future__ import annotations

from typing import Any

import torch

from diffusion.controlnet.control import ControlBase


def apply_control(
    conditionings: list[list],
    control: ControlBase,
    image: torch.Tensor,
    strength: float,
    start_percent: float = 0.0,
    end_percent: float = 1.0,
    vae: Any = None,
    apply_to_uncond: bool = False,
) -> list[list]:
    """The conditionings with the hint ``image`` (IMAGE [B,H,W,C]) attached; strength 0 returns them as given."""
    if strength == 0:
        return list(conditionings)
    hint = image.movedim(-1, 1)
    made: dict[int, ControlBase] = {}
    out = []
    for conditioning in conditionings:
        entries = []
        for context, options in conditioning:
            options = dict(options)
            previous = options.get("control")
            key = id(previous)
            if key not in made:
                new = control.copy().set_cond_hint(hint, strength, (start_percent, end_percent), vae=vae)
                made[key] = new.set_previous_controlnet(previous)
            options["control"] = made[key]
            options["control_apply_to_uncond"] = apply_to_uncond
            entries.append([context, options])
        out.append(entries)
    return out


def controls_to_uncond(positive: list[list], negative: list[list]) -> list[list]:
    """ComfyUI's rule for ControlNetApply (OLD): its controls also steer the negative prompt.

    When no whole-image negative entry has a control, each whole-image positive control marked
    ``control_apply_to_uncond`` is given to the whole-image negatives in turn (entries copied, a
    negative entry added when there are more controls than negatives). Otherwise nothing changes.
    """
    controls = [options["control"] for _, options in positive
                if "area" not in options and options.get("control") is not None
                and options.get("control_apply_to_uncond", False)]
    plain = [index for index, (_, options) in enumerate(negative) if "area" not in options]
    if not controls or not plain:
        return negative
    if any(negative[index][1].get("control") is not None for index in plain):
        return negative
    out = [list(entry) for entry in negative]
    for number, control in enumerate(controls):
        index = plain[number % len(plain)]
        context, options = negative[index]
        entry = [context, {**options, "control": control}]
        if number < len(plain):
            out[index] = entry
        else:
            out.append(entry)
    return out
