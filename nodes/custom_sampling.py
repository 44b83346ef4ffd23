"""Custom sampling's NOISE and GUIDER nodes and SamplerCustomAdvanced (ComfyUI's comfy_extras
names, inputs and defaults), thin adapters over diffusion.sampling.noise_sources and guiders.
Schedulers and sigma tools: nodes/schedulers.py; Sampler* nodes: nodes/samplers.py."""

from __future__ import annotations

import torch

from diffusion import sampling
from diffusion.sampling import guiders, noise_sources
from diffusion.sampling.pipeline import fix_empty_latent_channels
from nodes.sampling import CFG, SEED, step_callback

GUIDERS = "sampling/custom_sampling/guiders"
NOISE = "sampling/custom_sampling/noise"


# --- noise, guiders and SamplerCustomAdvanced ----------------------------------------------------


class DisableNoise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("NOISE",)
    FUNCTION = "get_noise"
    CATEGORY = NOISE

    def get_noise(self):
        return (noise_sources.EmptyNoise(),)


class RandomNoise(DisableNoise):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"noise_seed": SEED}}

    def get_noise(self, noise_seed):
        return (noise_sources.RandomNoise(noise_seed),)


class AddNoise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "noise": ("NOISE",), "sigmas": ("SIGMAS",),
                             "latent_image": ("LATENT",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "add_noise"
    CATEGORY = "_for_testing/custom_sampling/noise"

    def add_noise(self, model, noise, sigmas, latent_image):
        """Noise the latent to the level the schedule spans (|σ_first − σ_last|), for a sampler
        run later with DisableNoise."""
        if len(sigmas) == 0:
            return (latent_image,)
        scale = torch.abs(sigmas[0] - sigmas[-1]) if len(sigmas) > 1 else sigmas[0]
        ms = sampling.model_sampling_for(model)
        # LATENT samples are raw: noise is added in the model's scaled space, as ComfyUI does.
        latent_format = model.latent_format
        scaled = latent_format.process_in(latent_image["samples"])
        noisy = latent_format.process_out(ms.noise_scaling(scale, noise.generate_noise(latent_image), scaled))
        out = dict(latent_image)
        out["samples"] = torch.nan_to_num(noisy, nan=0.0, posinf=0.0, neginf=0.0)
        return (out,)


class _GuiderNode:
    RETURN_TYPES = ("GUIDER",)
    FUNCTION = "get_guider"
    CATEGORY = GUIDERS


class BasicGuider(_GuiderNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "conditioning": ("CONDITIONING",)}}

    def get_guider(self, model, conditioning):
        guider = guiders.BasicGuider(model)
        guider.set_conds(conditioning)
        return (guider,)


class CFGGuider(_GuiderNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "cfg": CFG}}

    def get_guider(self, model, positive, negative, cfg):
        guider = guiders.CFGGuider(model)
        guider.set_conds(positive, negative)
        guider.set_cfg(cfg)
        return (guider,)


class DualCFGGuider(_GuiderNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "cond1": ("CONDITIONING",),
                "cond2": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "cfg_conds": CFG,
                "cfg_cond2_negative": CFG,
                "style": (["regular", "nested"],),
            }
        }

    def get_guider(self, model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style="regular"):
        guider = guiders.DualCFGGuider(model)
        guider.set_conds(cond1, cond2, negative)
        guider.set_cfg(cfg_conds, cfg_cond2_negative, nested=style == "nested")
        return (guider,)


class PerpNegGuider(_GuiderNode):
    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "empty_conditioning": ("CONDITIONING",),
                "cfg": CFG,
                "neg_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01}),
            }
        }

    def get_guider(self, model, positive, negative, empty_conditioning, cfg, neg_scale):
        guider = guiders.PerpNegGuider(model)
        guider.set_conds(positive, negative, empty_conditioning)
        guider.set_cfg(cfg, neg_scale)
        return (guider,)


class SamplerCustomAdvanced:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"noise": ("NOISE",), "guider": ("GUIDER",), "sampler": ("SAMPLER",),
                             "sigmas": ("SIGMAS",), "latent_image": ("LATENT",)}}

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    def sample(self, noise, guider, sampler, sigmas, latent_image):
        model = guider.model_patcher
        latent = dict(latent_image)
        latent["samples"] = fix_empty_latent_channels(model, latent["samples"])
        progress = step_callback(model)
        last: dict[str, torch.Tensor] = {}

        def on_step(step, x0, x, total):
            last["x0"] = x0
            progress(step, total, x0)

        samples = guider.sample(noise.generate_noise(latent), latent["samples"], sampler, sigmas,
                                denoise_mask=latent.get("noise_mask"), callback=on_step, seed=noise.seed)
        out = dict(latent)
        out["samples"] = samples
        if "x0" not in last:
            return (out, out)
        denoised = dict(latent)
        denoised["samples"] = model.latent_format.process_out(last["x0"]).cpu()  # raw, like the samples
        return (out, denoised)


NODE_CLASS_MAPPINGS = {
    "DisableNoise": DisableNoise,
    "RandomNoise": RandomNoise,
    "AddNoise": AddNoise,
    "BasicGuider": BasicGuider,
    "CFGGuider": CFGGuider,
    "DualCFGGuider": DualCFGGuider,
    "PerpNegGuider": PerpNegGuider,
    "SamplerCustomAdvanced": SamplerCustomAdvanced,
}
