"""Sampler* nodes of ComfyUI's custom sampling: SAMPLER values with a sampler's options set
(eta, s_noise, orders, SDE choices). The samplers themselves live in diffusion.sampling.samplers."""

from __future__ import annotations

from functools import partial

from diffusion import sampling
from diffusion.latent_ops import UPSCALE_METHODS
from diffusion.sampling import Sampler, samplers

SAMPLERS = "sampling/custom_sampling/samplers"


def _option(default: float, top: float = 100.0) -> tuple[str, dict]:
    return ("FLOAT", {"default": default, "min": 0.0, "max": top, "step": 0.01, "round": False})


ETA, S_NOISE = _option(1.0), _option(1.0)
# ComfyUI's "gpu" noise device draws the Brownian tree on the GPU; ours is device-independent.
NOISE_DEVICE = (["gpu", "cpu"],)


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


NODE_CLASS_MAPPINGS = {
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
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "SamplerEulerAncestralCFGPP": "SamplerEulerAncestralCFG++",
    "SamplerEulerCFGpp": "SamplerEulerCFG++",
}
