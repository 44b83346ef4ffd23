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
}

COMBOS = {
    ("AlignYourStepsScheduler", "model_type"): ["SD1", "SDXL", "SVD"],
    ("ExtendIntermediateSigmas", "spacing"): ["linear", "cosine", "sine"],
}


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
