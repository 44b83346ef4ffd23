"""ComfyUI's `comfy.samplers` names for node packs: `KSampler.SAMPLERS` / `KSampler.SCHEDULERS`.

Packs list these in INPUT_TYPES combos; they are Latentgraph's own sampler and scheduler tables
(diffusion.sampling), so a value a pack offers is one our samplers accept. ``CFGGuider`` is our
GUIDER class with ComfyUI's interface (set_conds, set_cfg, sample); subclasses that override
ComfyUI's ``predict_noise`` are not supported. KSampler instances are not provided.
"""

from __future__ import annotations

from diffusion.sampling import SAMPLER_NAMES, SCHEDULER_NAMES
from diffusion.sampling.guiders import CFGGuider

__all__ = ["CFGGuider", "KSAMPLER_NAMES", "KSampler"]

KSAMPLER_NAMES: tuple[str, ...] = SAMPLER_NAMES


class KSampler:
    """Only the name tables; instantiate our nodes or diffusion.sampling to sample."""

    SAMPLERS: tuple[str, ...] = SAMPLER_NAMES
    SCHEDULERS: tuple[str, ...] = SCHEDULER_NAMES
