"""ComfyUI's `comfy.samplers` for node packs: the name tables, SAMPLER values and CFGGuider.

Packs list `KSampler.SAMPLERS` / `KSampler.SCHEDULERS` in INPUT_TYPES combos; they are Latentgraph's
own tables (diffusion.sampling), so a value a pack offers is one our samplers accept.
`sampler_object(name)` and `ksampler(name, extra_options)` build SAMPLER values; ``CFGGuider`` is
our GUIDER class with ComfyUI's interface (set_conds, set_cfg, sample). Not provided: KSampler
instances, `KSAMPLER(function)` with a pack's own sampler function, and guider subclasses that
override ComfyUI's ``predict_noise``.
"""

from __future__ import annotations

from typing import Any

from diffusion.sampling import SAMPLER_NAMES, SCHEDULER_NAMES, Sampler
from diffusion.sampling.guiders import CFGGuider

__all__ = ["CFGGuider", "KSAMPLER_NAMES", "SAMPLER_NAMES", "SCHEDULER_NAMES", "KSampler", "ksampler", "sampler_object"]

# Lists, as in ComfyUI: packs build their combos with `KSampler.SCHEDULERS + ["their_own"]`.
KSAMPLER_NAMES: list[str] = list(SAMPLER_NAMES)


class KSampler:
    """Only the name tables; instantiate our nodes or diffusion.sampling to sample."""

    SAMPLERS: list[str] = list(SAMPLER_NAMES)
    SCHEDULERS: list[str] = list(SCHEDULER_NAMES)


def sampler_object(name: str) -> Sampler:
    """The SAMPLER value KSamplerSelect makes for ``name``."""
    return Sampler(name)


def ksampler(sampler_name: str, extra_options: dict[str, Any] | None = None,
             inpaint_options: dict[str, Any] | None = None) -> Sampler:
    """A SAMPLER with fixed keyword options (eta, s_noise, ...), as ComfyUI's Sampler* nodes make.
    ``inpaint_options`` (ComfyUI's random-noise inpainting switch) is not supported and ignored."""
    return Sampler(sampler_name, dict(extra_options or {}))
