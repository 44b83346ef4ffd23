"""Custom-sampling nodes (ComfyUI's comfy_extras samplers, schedulers, sigma tools, noise and
guiders). Each is a thin adapter over diffusion.sampling; names, inputs and defaults are ComfyUI's."""

from __future__ import annotations

from functools import partial

import torch

from diffusion import sampling
from diffusion.latent_ops import UPSCALE_METHODS
from diffusion.sampling import Sampler, guiders, noise_sources, samplers, schedulers, sigma_ops
from diffusion.sampling.pipeline import fix_empty_latent_channels
from nodes.sampling import CFG, SEED, _check_range, step_callback

SIGMA_RANGE = {"min": 0.0, "max": 5000.0, "step": 0.01, "round": False}
SIGMA_MAX = ("FLOAT", {"default": 14.614642, **SIGMA_RANGE})
SIGMA_MIN = ("FLOAT", {"default": 0.0291675, **SIGMA_RANGE})
STEPS = ("INT", {"default": 20, "min": 1, "max": 10000})
DENOISE = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})

SCHEDULERS = "sampling/custom_sampling/schedulers"
SIGMAS = "sampling/custom_sampling/sigmas"
SAMPLERS = "sampling/custom_sampling/samplers"
GUIDERS = "sampling/custom_sampling/guiders"
NOISE = "sampling/custom_sampling/noise"


def _option(default: float, top: float = 100.0) -> tuple[str, dict]:
    return ("FLOAT", {"default": default, "min": 0.0, "max": top, "step": 0.01, "round": False})


ETA, S_NOISE = _option(1.0), _option(1.0)
# ComfyUI's "gpu" noise device draws the Brownian tree on the GPU; ours is device-independent.
NOISE_DEVICE = (["gpu", "cpu"],)


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


# --- samplers ------------------------------------------------------------------------------------


class _SamplerNode:
    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = SAMPLERS


class SamplerEulerAncestral(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE}}

    def get_sampler(self, eta, s_noise):
        return (Sampler("euler_ancestral", {"eta": eta, "s_noise": s_noise}),)


class SamplerEulerAncestralCFGPP(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": _option(1.0, 1.0), "s_noise": _option(1.0, 10.0)}}

    def get_sampler(self, eta, s_noise):
        return (Sampler("euler_ancestral_cfg_pp", {"eta": eta, "s_noise": s_noise}),)


class SamplerEulerCFGpp(_SamplerNode):
    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"version": (["regular", "alternative"],)}}

    def get_sampler(self, version):
        return (Sampler("euler_cfg_pp_alternative" if version == "alternative" else "euler_cfg_pp"),)


class SamplerLMS(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"order": ("INT", {"default": 4, "min": 1, "max": 100})}}

    def get_sampler(self, order):
        return (Sampler("lms", {"order": order}),)


class SamplerDPMPP_2S_Ancestral(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE}}

    def get_sampler(self, eta, s_noise):
        return (Sampler("dpmpp_2s_ancestral", {"eta": eta, "s_noise": s_noise}),)


class SamplerDPMPP_SDE(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE, "r": _option(0.5), "noise_device": NOISE_DEVICE}}

    def get_sampler(self, eta, s_noise, r, noise_device):
        return (Sampler("dpmpp_sde", {"eta": eta, "s_noise": s_noise, "r": r}),)


class SamplerDPMPP_2M_SDE(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"solver_type": (["midpoint", "heun"],), "eta": ETA, "s_noise": S_NOISE,
                             "noise_device": NOISE_DEVICE}}

    def get_sampler(self, solver_type, eta, s_noise, noise_device):
        return (Sampler("dpmpp_2m_sde", {"eta": eta, "s_noise": s_noise, "solver_type": solver_type}),)


class SamplerDPMPP_3M_SDE(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"eta": ETA, "s_noise": S_NOISE, "noise_device": NOISE_DEVICE}}

    def get_sampler(self, eta, s_noise, noise_device):
        return (Sampler("dpmpp_3m_sde", {"eta": eta, "s_noise": s_noise}),)


class SamplerDPMAdaptative(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "order": ("INT", {"default": 3, "min": 2, "max": 3}),
                "rtol": _option(0.05),
                "atol": _option(0.0078),
                "h_init": _option(0.05),
                "pcoeff": _option(0.0),
                "icoeff": _option(1.0),
                "dcoeff": _option(0.0),
                "accept_safety": _option(0.81),
                "eta": _option(0.0),
                "s_noise": S_NOISE,
            }
        }

    def get_sampler(self, **options):
        return (Sampler("dpm_adaptive", options),)


class SamplerER_SDE(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        eta = {**_option(1.0)[1], "tooltip": "Stochastic strength of reverse-time SDE.\nWhen eta=0, it reduces to "
                                             "deterministic ODE. This setting doesn't apply to ER-SDE solver type."}
        return {
            "required": {
                "solver_type": (["ER-SDE", "Reverse-time SDE", "ODE"],),
                "max_stage": ("INT", {"default": 3, "min": 1, "max": 3}),
                "eta": ("FLOAT", eta),
                "s_noise": S_NOISE,
            }
        }

    def get_sampler(self, solver_type, max_stage, eta, s_noise):
        if solver_type == "ODE" or (solver_type == "Reverse-time SDE" and eta == 0):
            eta, s_noise = 0.0, 0.0
        options = {"s_noise": s_noise, "max_stage": max_stage}
        if solver_type != "ER-SDE":
            options["noise_scaler"] = partial(samplers.reverse_time_sde_noise_scaler, eta=eta)
        return (Sampler("er_sde", options),)


class SamplerSASolver(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        percent = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {
            "required": {
                "model": ("MODEL", {}),
                "eta": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "round": False}),
                "sde_start_percent": ("FLOAT", {"default": 0.2, **percent}),
                "sde_end_percent": ("FLOAT", {"default": 0.8, **percent}),
                "s_noise": S_NOISE,
                "predictor_order": ("INT", {"default": 3, "min": 1, "max": 6}),
                "corrector_order": ("INT", {"default": 4, "min": 0, "max": 6}),
                "use_pece": ("BOOLEAN", {}),
                "simple_order_2": ("BOOLEAN", {}),
            }
        }

    def get_sampler(self, model, eta, sde_start_percent, sde_end_percent, s_noise, predictor_order, corrector_order,
                    use_pece=False, simple_order_2=False):
        ms = sampling.model_sampling_for(model)
        tau = samplers.sa_solver_tau(ms.percent_to_sigma(sde_start_percent), ms.percent_to_sigma(sde_end_percent), eta)
        return (Sampler("sa_solver", {"tau_func": tau, "s_noise": s_noise, "predictor_order": predictor_order,
                                      "corrector_order": corrector_order, "use_pece": bool(use_pece),
                                      "simple_order_2": bool(simple_order_2)}),)


class SamplerLCMUpscale(_SamplerNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "scale_ratio": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 20.0, "step": 0.01}),
                "scale_steps": ("INT", {"default": -1, "min": -1, "max": 1000, "step": 1}),
                "upscale_method": (["bislerp", *(m for m in UPSCALE_METHODS if m != "bislerp")],),
            }
        }

    def get_sampler(self, scale_ratio, scale_steps, upscale_method):
        options = {"total_upscale": scale_ratio, "upscale_method": upscale_method,
                   "upscale_steps": None if scale_steps < 0 else scale_steps}
        return (Sampler("lcm_upscale", options),)


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
    "SamplerEulerAncestral": SamplerEulerAncestral,
    "SamplerEulerAncestralCFGPP": SamplerEulerAncestralCFGPP,
    "SamplerEulerCFGpp": SamplerEulerCFGpp,
    "SamplerLMS": SamplerLMS,
    "SamplerDPMPP_2S_Ancestral": SamplerDPMPP_2S_Ancestral,
    "SamplerDPMPP_SDE": SamplerDPMPP_SDE,
    "SamplerDPMPP_2M_SDE": SamplerDPMPP_2M_SDE,
    "SamplerDPMPP_3M_SDE": SamplerDPMPP_3M_SDE,
    "SamplerDPMAdaptative": SamplerDPMAdaptative,
    "SamplerER_SDE": SamplerER_SDE,
    "SamplerSASolver": SamplerSASolver,
    "SamplerLCMUpscale": SamplerLCMUpscale,
    "DisableNoise": DisableNoise,
    "RandomNoise": RandomNoise,
    "AddNoise": AddNoise,
    "BasicGuider": BasicGuider,
    "CFGGuider": CFGGuider,
    "DualCFGGuider": DualCFGGuider,
    "PerpNegGuider": PerpNegGuider,
    "SamplerCustomAdvanced": SamplerCustomAdvanced,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "SamplerEulerAncestralCFGPP": "SamplerEulerAncestralCFG++",
    "SamplerEulerCFGpp": "SamplerEulerCFG++",
}
