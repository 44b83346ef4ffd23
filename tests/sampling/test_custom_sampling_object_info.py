"""/object_info of the custom-sampling and model-sampling nodes: ComfyUI's names, categories,
input names (in order), defaults and outputs, transcribed from ComfyUI's comfy_extras so a rename
on either side is caught."""

from __future__ import annotations

import pytest

from tests.support.engine_fixtures import make_runtime

SCHED = "sampling/custom_sampling/schedulers"
SIGMAS = "sampling/custom_sampling/sigmas"
SAMPLERS = "sampling/custom_sampling/samplers"
GUIDERS = "sampling/custom_sampling/guiders"

# name: (category, outputs, {input: default or None for a link/combo without default})
SPEC: dict[str, tuple[str, list[str], dict[str, object]]] = {
    "PolyexponentialScheduler": (SCHED, ["SIGMAS"], {"steps": 20, "sigma_max": 14.614642, "sigma_min": 0.0291675,
                                                     "rho": 1.0}),
    "LaplaceScheduler": (SCHED, ["SIGMAS"], {"steps": 20, "sigma_max": 14.614642, "sigma_min": 0.0291675, "mu": 0.0,
                                             "beta": 0.5}),
    "VPScheduler": (SCHED, ["SIGMAS"], {"steps": 20, "beta_d": 19.9, "beta_min": 0.1, "eps_s": 0.001}),
    "BetaSamplingScheduler": (SCHED, ["SIGMAS"], {"model": None, "steps": 20, "alpha": 0.6, "beta": 0.6}),
    "AlignYourStepsScheduler": (SCHED, ["SIGMAS"], {"model_type": None, "steps": 10, "denoise": 1.0}),
    "GITSScheduler": (SCHED, ["SIGMAS"], {"coeff": 1.2, "steps": 10, "denoise": 1.0}),
    "SplitSigmas": (SIGMAS, ["SIGMAS", "SIGMAS"], {"sigmas": None, "step": 0}),
    "SplitSigmasDenoise": (SIGMAS, ["SIGMAS", "SIGMAS"], {"sigmas": None, "denoise": 1.0}),
    "FlipSigmas": (SIGMAS, ["SIGMAS"], {"sigmas": None}),
    "SetFirstSigma": (SIGMAS, ["SIGMAS"], {"sigmas": None, "sigma": 136.0}),
    "ExtendIntermediateSigmas": (SIGMAS, ["SIGMAS"], {"sigmas": None, "steps": 2, "start_at_sigma": -1.0,
                                                      "end_at_sigma": 12.0, "spacing": None}),
    "SamplingPercentToSigma": (SIGMAS, ["FLOAT"], {"model": None, "sampling_percent": 0.0,
                                                   "return_actual_sigma": False}),
    "SamplerEulerAncestral": (SAMPLERS, ["SAMPLER"], {"eta": 1.0, "s_noise": 1.0}),
    "SamplerEulerAncestralCFGPP": (SAMPLERS, ["SAMPLER"], {"eta": 1.0, "s_noise": 1.0}),
    "SamplerEulerCFGpp": ("_for_testing", ["SAMPLER"], {"version": None}),
    "SamplerLMS": (SAMPLERS, ["SAMPLER"], {"order": 4}),
    "SamplerDPMPP_2S_Ancestral": (SAMPLERS, ["SAMPLER"], {"eta": 1.0, "s_noise": 1.0}),
    "SamplerDPMPP_SDE": (SAMPLERS, ["SAMPLER"], {"eta": 1.0, "s_noise": 1.0, "r": 0.5, "noise_device": None}),
    "SamplerDPMPP_2M_SDE": (SAMPLERS, ["SAMPLER"], {"solver_type": None, "eta": 1.0, "s_noise": 1.0,
                                                    "noise_device": None}),
    "SamplerDPMPP_3M_SDE": (SAMPLERS, ["SAMPLER"], {"eta": 1.0, "s_noise": 1.0, "noise_device": None}),
    "SamplerDPMAdaptative": (SAMPLERS, ["SAMPLER"], {"order": 3, "rtol": 0.05, "atol": 0.0078, "h_init": 0.05,
                                                     "pcoeff": 0.0, "icoeff": 1.0, "dcoeff": 0.0,
                                                     "accept_safety": 0.81, "eta": 0.0, "s_noise": 1.0}),
    "SamplerER_SDE": (SAMPLERS, ["SAMPLER"], {"solver_type": None, "max_stage": 3, "eta": 1.0, "s_noise": 1.0}),
    "SamplerSASolver": (SAMPLERS, ["SAMPLER"], {"model": None, "eta": 1.0, "sde_start_percent": 0.2,
                                                "sde_end_percent": 0.8, "s_noise": 1.0, "predictor_order": 3,
                                                "corrector_order": 4, "use_pece": None, "simple_order_2": None}),
    "SamplerLCMUpscale": (SAMPLERS, ["SAMPLER"], {"scale_ratio": 1.0, "scale_steps": -1, "upscale_method": None}),
    "DisableNoise": ("sampling/custom_sampling/noise", ["NOISE"], {}),
    "RandomNoise": ("sampling/custom_sampling/noise", ["NOISE"], {"noise_seed": 0}),
    "AddNoise": ("_for_testing/custom_sampling/noise", ["LATENT"], {"model": None, "noise": None, "sigmas": None,
                                                                    "latent_image": None}),
    "BasicGuider": (GUIDERS, ["GUIDER"], {"model": None, "conditioning": None}),
    "CFGGuider": (GUIDERS, ["GUIDER"], {"model": None, "positive": None, "negative": None, "cfg": 8.0}),
    "DualCFGGuider": (GUIDERS, ["GUIDER"], {"model": None, "cond1": None, "cond2": None, "negative": None,
                                            "cfg_conds": 8.0, "cfg_cond2_negative": 8.0, "style": None}),
    "PerpNegGuider": ("_for_testing", ["GUIDER"], {"model": None, "positive": None, "negative": None,
                                                   "empty_conditioning": None, "cfg": 8.0, "neg_scale": 1.0}),
    "SamplerCustomAdvanced": ("sampling/custom_sampling", ["LATENT", "LATENT"], {
        "noise": None, "guider": None, "sampler": None, "sigmas": None, "latent_image": None}),
    "ModelSamplingDiscrete": ("advanced/model", ["MODEL"], {"model": None, "sampling": None, "zsnr": False}),
    "ModelSamplingContinuousEDM": ("advanced/model", ["MODEL"], {"model": None, "sampling": None, "sigma_max": 120.0,
                                                                 "sigma_min": 0.002}),
    "ModelSamplingContinuousV": ("advanced/model", ["MODEL"], {"model": None, "sampling": None, "sigma_max": 500.0,
                                                               "sigma_min": 0.03}),
}

COMBOS = {
    ("AlignYourStepsScheduler", "model_type"): ["SD1", "SDXL", "SVD"],
    ("ExtendIntermediateSigmas", "spacing"): ["linear", "cosine", "sine"],
    ("SamplerEulerCFGpp", "version"): ["regular", "alternative"],
    ("SamplerDPMPP_SDE", "noise_device"): ["gpu", "cpu"],
    ("SamplerDPMPP_2M_SDE", "solver_type"): ["midpoint", "heun"],
    ("SamplerLCMUpscale", "upscale_method"): ["bislerp", "nearest-exact", "bilinear", "area", "bicubic"],
    ("DualCFGGuider", "style"): ["regular", "nested"],
    ("SamplerER_SDE", "solver_type"): ["ER-SDE", "Reverse-time SDE", "ODE"],
    ("ModelSamplingDiscrete", "sampling"): ["eps", "v_prediction", "lcm", "x0", "img_to_img"],
    ("ModelSamplingContinuousEDM", "sampling"): ["v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow"],
    ("ModelSamplingContinuousV", "sampling"): ["v_prediction"],
}


def test_sampler_custom_advanced_output_names(object_info):
    assert object_info["SamplerCustomAdvanced"]["output_name"] == ["output", "denoised_output"]
    assert object_info["RandomNoise"]["input"]["required"]["noise_seed"][1]["control_after_generate"] is True


def test_display_names_of_the_cfg_pp_samplers(object_info):
    assert object_info["SamplerEulerAncestralCFGPP"]["display_name"] == "SamplerEulerAncestralCFG++"
    assert object_info["SamplerEulerCFGpp"]["display_name"] == "SamplerEulerCFG++"


def test_ksampler_offers_the_cfg_pp_samplers(object_info):
    names = object_info["KSampler"]["input"]["required"]["sampler_name"][0]
    assert {"euler_cfg_pp", "euler_ancestral_cfg_pp", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_2m_cfg_pp"} <= set(names)


@pytest.fixture(scope="module")
def object_info(tmp_path_factory):
    return make_runtime(tmp_path_factory.mktemp("object_info")).registry.object_info()


@pytest.mark.parametrize("name", sorted(SPEC))
def test_node_matches_comfyui_interface(object_info, name):
    category, outputs, inputs = SPEC[name]
    info = object_info[name]
    assert info["category"] == category
    assert info["output"] == outputs
    required = info["input"]["required"]
    assert list(required) == list(inputs)
    for input_name, default in inputs.items():
        spec = required[input_name]
        if default is not None:
            assert spec[1]["default"] == pytest.approx(default), input_name
    for (node, input_name), options in COMBOS.items():
        if node == name:
            assert required[input_name][0] == options
