"""GUIDER values: a MODEL, named conditionings and a rule that mixes their x0 estimates, run by
SamplerCustomAdvanced with a NOISE, a SAMPLER and SIGMAS.

The classes keep ComfyUI's CFGGuider interface (``model_patcher``, ``set_conds``, ``set_cfg``,
``inner_set_conds``, ``sample(noise, latent_image, sampler, sigmas, denoise_mask, callback,
disable_pbar, seed)``) so node packs can build and run them. Each guider's mixing rule is a
CFGDenoiser subclass, so area/mask batching and the model's cfg hooks apply unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from diffusion.sampling.guidance import CFGDenoiser, CondChunk, add_uncond_areas
from diffusion.sampling.model_sampling import DiscreteModelSampling
from diffusion.sampling.pipeline import Sampler, run_sampler

# ComfyUI's guider callback: (step, x0, x, total_steps); x is not reported here (None).
GuiderCallback = Callable[[int, torch.Tensor, Any, int], None]


class CFGGuider:
    """Classifier-free guidance over ``positive`` and ``negative`` (what KSampler does)."""

    def __init__(self, model_patcher: Any) -> None:
        self.model_patcher = model_patcher
        self.model_options: dict[str, Any] = getattr(model_patcher, "model_options", None) or {}
        self.original_conds: dict[str, list] = {}
        self.cfg = 1.0

    def set_conds(self, positive: list, negative: list) -> None:
        self.inner_set_conds({"positive": positive, "negative": negative})

    def set_cfg(self, cfg: float) -> None:
        self.cfg = float(cfg)

    def inner_set_conds(self, conds: dict[str, list | None]) -> None:
        for name, conditioning in conds.items():
            if conditioning is not None:
                self.original_conds[name] = list(conditioning)

    def denoiser(self, model: Any, ms: DiscreteModelSampling, conds: dict[str, list[CondChunk]],
                 max_batch: int | None) -> CFGDenoiser:
        """The ``model(x, σ) -> x0`` callable for prepared conditionings (pipeline.DenoiserFactory)."""
        return CFGDenoiser(model, ms, conds.get("positive", []), conds.get("negative", []), self.cfg, max_batch)

    def sample(self, noise: torch.Tensor, latent_image: torch.Tensor, sampler: Sampler, sigmas: torch.Tensor,
               denoise_mask: torch.Tensor | None = None, callback: GuiderCallback | None = None,
               disable_pbar: bool = False, seed: int | None = None) -> torch.Tensor:
        """Sample ``latent_image`` from ``noise`` along ``sigmas``; returns the samples (CPU)."""

        def on_step(step: int, total: int, x0: torch.Tensor) -> None:
            if callback is not None:
                callback(step, x0, None, total)

        samples, _ = run_sampler(self.model_patcher, sampler, sigmas, noise, latent_image, [], [], self.cfg,
                                 denoise_mask=denoise_mask, seed=seed, callback=on_step,
                                 conditioning=self.original_conds, guidance=self.denoiser)
        return samples


class BasicGuider(CFGGuider):
    """The conditioning alone, no guidance (cfg 1: one model pass per step)."""

    def set_conds(self, positive: list) -> None:  # type: ignore[override]
        self.inner_set_conds({"positive": positive})


class DualCFGGuider(CFGGuider):
    """Two prompts against a negative (ComfyUI's DualCFGGuider).

    regular: x0 = CFG(cond2 vs negative, cfg2) + cfg1·(cond1 − cond2);
    nested:  x0 = neg + cfg2·(CFG(cond1 vs cond2, cfg1) − neg).
    """

    cfg1, cfg2, nested = 1.0, 1.0, False

    def set_conds(self, positive: list, middle: list, negative: list) -> None:  # type: ignore[override]
        self.inner_set_conds({"positive": positive, "middle": middle, "negative": negative})

    def set_cfg(self, cfg1: float, cfg2: float, nested: bool = False) -> None:  # type: ignore[override]
        self.cfg1, self.cfg2, self.nested = float(cfg1), float(cfg2), bool(nested)

    def denoiser(self, model, ms, conds, max_batch):
        return DualCFGDenoiser(model, ms, conds.get("positive", []), conds.get("middle", []),
                               conds.get("negative", []), self.cfg1, self.cfg2, self.nested, max_batch)


class PerpNegGuider(CFGGuider):
    """Perpendicular negative guidance (Armandpour et al. 2023): only the part of the negative
    direction orthogonal to the positive one is subtracted, both measured from an empty prompt."""

    neg_scale = 1.0

    def set_conds(self, positive: list, negative: list, empty_negative_prompt: list) -> None:  # type: ignore[override]
        self.inner_set_conds({"positive": positive, "empty_negative_prompt": empty_negative_prompt,
                              "negative": negative})

    def set_cfg(self, cfg: float, neg_scale: float = 1.0) -> None:  # type: ignore[override]
        self.cfg, self.neg_scale = float(cfg), float(neg_scale)

    def denoiser(self, model, ms, conds, max_batch):
        return PerpNegDenoiser(model, ms, conds.get("positive", []), conds.get("negative", []),
                               conds.get("empty_negative_prompt", []), self.cfg, self.neg_scale, max_batch)


# --- mixing rules ------------------------------------------------------------------------------------


class DualCFGDenoiser(CFGDenoiser):
    def __init__(self, model, ms, positive, middle, negative, cfg1: float, cfg2: float, nested: bool,
                 max_batch: int | None = None) -> None:
        super().__init__(model, ms, positive, negative, cfg2, max_batch)
        self.middle = add_uncond_areas(positive, middle)
        self.cfg1, self.cfg2, self.nested = cfg1, cfg2, nested

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, uncond_sink: dict | None = None,
                 **_: Any) -> torch.Tensor:
        if self.nested:
            negative, middle, positive = self.predict([self.negative, self.middle, self.positive], x, sigma)
            if uncond_sink is not None:
                uncond_sink["uncond_denoised"] = middle
            text = self.cfg_function(x, sigma, positive, middle, self.cfg1, self.positive, self.middle)
            return negative + self.cfg2 * (text - negative)
        keep_all = uncond_sink is not None or self.model_options.get("disable_cfg1_optimization", False)
        use_negative = keep_all or not math.isclose(self.cfg2, 1.0)
        use_middle = use_negative or not math.isclose(self.cfg1, 1.0)
        # A skipped list predicts zeros, as ComfyUI's None conditioning does.
        lists = [self.negative if use_negative else [], self.middle if use_middle else [], self.positive]
        negative, middle, positive = self.predict(lists, x, sigma)
        if uncond_sink is not None:
            uncond_sink["uncond_denoised"] = negative
        mixed = self.cfg_function(x, sigma, middle, negative, self.cfg2, self.middle,
                                  self.negative if use_negative else None)
        return mixed + (positive - middle) * self.cfg1


def perp_neg(positive: torch.Tensor, negative: torch.Tensor, empty: torch.Tensor, neg_scale: float,
             cfg: float) -> torch.Tensor:
    """empty + cfg·(pos − neg_scale·neg⊥), pos and neg taken from the empty prompt's estimate and
    neg⊥ the part of neg orthogonal to pos (projection over the whole batch, as ComfyUI)."""
    pos, neg = positive - empty, negative - empty
    perpendicular = neg - (neg * pos).sum() / torch.norm(pos) ** 2 * pos
    return empty + cfg * (pos - perpendicular * neg_scale)


class PerpNegDenoiser(CFGDenoiser):
    def __init__(self, model, ms, positive, negative, empty, cfg: float, neg_scale: float,
                 max_batch: int | None = None) -> None:
        super().__init__(model, ms, positive, negative, cfg, max_batch)
        self.empty = add_uncond_areas(positive, empty)
        self.neg_scale = neg_scale

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, uncond_sink: dict | None = None,
                 **_: Any) -> torch.Tensor:
        options = self.model_options
        keep_all = uncond_sink is not None or options.get("disable_cfg1_optimization", False)
        use_negative = keep_all or not math.isclose(self.neg_scale, 0.0)
        use_empty = use_negative or not math.isclose(self.cfg, 1.0)
        conds = [self.positive, self.negative if use_negative else None, self.empty if use_empty else None]
        out = self.predict([c or [] for c in conds], x, sigma)
        base = getattr(self.model, "model", self.model)
        for function in options.get("sampler_pre_cfg_function", ()):
            out = function({"conds": conds, "conds_out": out, "cond_scale": self.cfg, "timestep": sigma,
                            "input": x, "sigma": sigma, "model": base, "model_options": options})
        positive, negative, empty = out
        if uncond_sink is not None:
            uncond_sink["uncond_denoised"] = negative
        result = perp_neg(positive, negative, empty, self.neg_scale, self.cfg)
        for function in options.get("sampler_post_cfg_function", ()):
            result = function({"denoised": result, "cond": conds[0], "uncond": conds[1], "cond_scale": self.cfg,
                               "model": base, "uncond_denoised": negative, "cond_denoised": positive,
                               "sigma": sigma, "model_options": options, "input": x, "empty_cond": conds[2],
                               "empty_cond_denoised": empty})
        return result
