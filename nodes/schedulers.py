"""Scheduler and sigma-tool nodes of ComfyUI's custom sampling (SIGMAS values): parametric and
published schedules, and splitting, flipping and extending a schedule. Thin adapters over
diffusion.sampling.schedulers and sigma_ops; names, inputs and defaults are ComfyUI's."""

from __future__ import annotations

from diffusion import sampling
from diffusion.sampling import schedulers, sigma_ops
from nodes.sampling import _check_range

SIGMA_RANGE = {"min": 0.0, "max": 5000.0, "step": 0.01, "round": False}
SIGMA_MAX = ("FLOAT", {"default": 14.614642, **SIGMA_RANGE})
SIGMA_MIN = ("FLOAT", {"default": 0.0291675, **SIGMA_RANGE})
STEPS = ("INT", {"default": 20, "min": 1, "max": 10000})
DENOISE = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})

SCHEDULERS = "sampling/custom_sampling/schedulers"
SIGMAS = "sampling/custom_sampling/sigmas"


# --- schedulers --------------------------------------------------------------------------------


class PolyexponentialScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        rho = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01, "round": False})
        return {"required": {"steps": STEPS, "sigma_max": SIGMA_MAX, "sigma_min": SIGMA_MIN, "rho": rho}}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS

    def get_sigmas(self, steps, sigma_max, sigma_min, rho):
        _check_range(sigma_min, sigma_max)
        return (schedulers.get_sigmas_polyexponential(steps, sigma_min, sigma_max, rho),)


class LaplaceScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": STEPS,
                "sigma_max": SIGMA_MAX,
                "sigma_min": SIGMA_MIN,
                "mu": ("FLOAT", {"default": 0.0, "min": -10.0, "max": 10.0, "step": 0.1, "round": False}),
                "beta": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 10.0, "step": 0.1, "round": False}),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS

    def get_sigmas(self, steps, sigma_max, sigma_min, mu, beta):
        return (schedulers.get_sigmas_laplace(steps, sigma_min, sigma_max, mu, beta),)


class VPScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": STEPS,
                "beta_d": ("FLOAT", {"default": 19.9, **SIGMA_RANGE}),
                "beta_min": ("FLOAT", {"default": 0.1, **SIGMA_RANGE}),
                "eps_s": ("FLOAT", {"default": 0.001, "min": 0.0, "max": 1.0, "step": 0.0001, "round": False}),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS

    def get_sigmas(self, steps, beta_d, beta_min, eps_s):
        return (schedulers.get_sigmas_vp(steps, beta_d, beta_min, eps_s),)


class BetaSamplingScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        shape = {"default": 0.6, "min": 0.0, "max": 50.0, "step": 0.01, "round": False}
        return {"required": {"model": ("MODEL",), "steps": STEPS, "alpha": ("FLOAT", shape), "beta": ("FLOAT", shape)}}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS

    def get_sigmas(self, model, steps, alpha, beta):
        return (schedulers.beta_schedule(sampling.model_sampling_for(model), steps, alpha, beta),)


class AlignYourStepsScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_type": (list(schedulers.AYS_NOISE_LEVELS),),
                "steps": ("INT", {"default": 10, "min": 1, "max": 10000}),
                "denoise": DENOISE,
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS

    def get_sigmas(self, model_type, steps, denoise):
        return (schedulers.align_your_steps_schedule(model_type, steps, denoise),)


class GITSScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "coeff": ("FLOAT", {"default": 1.20, "min": 0.80, "max": 1.50, "step": 0.05}),
                "steps": ("INT", {"default": 10, "min": 2, "max": 1000}),
                "denoise": DENOISE,
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULERS

    def get_sigmas(self, coeff, steps, denoise):
        return (schedulers.gits_schedule(coeff, steps, denoise),)


# --- sigma tools ---------------------------------------------------------------------------------


class SplitSigmas:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",), "step": ("INT", {"default": 0, "min": 0, "max": 10000})}}

    RETURN_TYPES = ("SIGMAS", "SIGMAS")
    RETURN_NAMES = ("high_sigmas", "low_sigmas")
    FUNCTION = "get_sigmas"
    CATEGORY = SIGMAS

    def get_sigmas(self, sigmas, step):
        return sigma_ops.split_at_step(sigmas, step)


class SplitSigmasDenoise:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",), "denoise": DENOISE}}

    RETURN_TYPES = ("SIGMAS", "SIGMAS")
    RETURN_NAMES = ("high_sigmas", "low_sigmas")
    FUNCTION = "get_sigmas"
    CATEGORY = SIGMAS

    def get_sigmas(self, sigmas, denoise):
        return sigma_ops.split_at_denoise(sigmas, denoise)


class FlipSigmas:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sigmas": ("SIGMAS",)}}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SIGMAS

    def get_sigmas(self, sigmas):
        return (sigma_ops.flip(sigmas),)


class SetFirstSigma:
    @classmethod
    def INPUT_TYPES(cls):
        sigma = {"default": 136.0, "min": 0.0, "max": 20000.0, "step": 0.001, "round": False}
        return {"required": {"sigmas": ("SIGMAS",), "sigma": ("FLOAT", sigma)}}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "set_first_sigma"
    CATEGORY = SIGMAS

    def set_first_sigma(self, sigmas, sigma):
        return (sigma_ops.set_first(sigmas, sigma),)


class ExtendIntermediateSigmas:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sigmas": ("SIGMAS",),
                "steps": ("INT", {"default": 2, "min": 1, "max": 100}),
                "start_at_sigma": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 20000.0, "step": 0.01, "round": False}),
                "end_at_sigma": ("FLOAT", {"default": 12.0, "min": 0.0, "max": 20000.0, "step": 0.01, "round": False}),
                "spacing": (list(sigma_ops.SPACINGS),),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "extend"
    CATEGORY = SIGMAS

    def extend(self, sigmas, steps, start_at_sigma, end_at_sigma, spacing):
        return (sigma_ops.extend_intermediate(sigmas, steps, start_at_sigma, end_at_sigma, spacing),)


class SamplingPercentToSigma:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {}),
                "sampling_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.0001}),
                "return_actual_sigma": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "Return the actual sigma value instead of the value used for interval checks.\n"
                               "This only affects results at 0.0 and 1.0.",
                }),
            }
        }

    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("sigma_value",)
    FUNCTION = "get_sigma"
    CATEGORY = SIGMAS

    def get_sigma(self, model, sampling_percent, return_actual_sigma):
        ms = sampling.model_sampling_for(model)
        if return_actual_sigma and sampling_percent == 0.0:
            return (ms.sigma_max,)
        if return_actual_sigma and sampling_percent == 1.0:
            return (ms.sigma_min,)
        return (ms.percent_to_sigma(sampling_percent),)


NODE_CLASS_MAPPINGS = {
    "PolyexponentialScheduler": PolyexponentialScheduler,
    "LaplaceScheduler": LaplaceScheduler,
    "VPScheduler": VPScheduler,
    "BetaSamplingScheduler": BetaSamplingScheduler,
    "AlignYourStepsScheduler": AlignYourStepsScheduler,
    "GITSScheduler": GITSScheduler,
    "SplitSigmas": SplitSigmas,
    "SplitSigmasDenoise": SplitSigmasDenoise,
    "FlipSigmas": FlipSigmas,
    "SetFirstSigma": SetFirstSigma,
    "ExtendIntermediateSigmas": ExtendIntermediateSigmas,
    "SamplingPercentToSigma": SamplingPercentToSigma,
}
