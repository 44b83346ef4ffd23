"""Model-sampling nodes: replace a MODEL's noise parameterisation (prediction type, discrete or
continuous noise range) on a clone, as ComfyUI's ModelSampling* nodes do."""

from __future__ import annotations

RANGE = {"min": 0.0, "max": 1000.0, "step": 0.001, "round": False}
# ComfyUI's EDM options → (prediction, sigma_data). Playground v2.5 also needs its own latent
# format and Cosmos a rectified-flow schedule, neither of which SD models here have.
EDM_SAMPLING = {"v_prediction": ("v_prediction", 1.0), "edm": ("edm", 0.5), "eps": ("eps", 1.0)}
EDM_UNSUPPORTED = ("edm_playground_v2.5", "cosmos_rflow")


class ModelSamplingDiscrete:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "sampling": (["eps", "v_prediction", "lcm", "x0", "img_to_img"],),
                "zsnr": ("BOOLEAN", {"default": False}),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "advanced/model"

    def patch(self, model, sampling, zsnr):
        return (model.with_sampling_config(prediction=sampling, zero_terminal_snr=bool(zsnr), schedule="discrete"),)


class ModelSamplingContinuousEDM:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "sampling": (["v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow"],),
                "sigma_max": ("FLOAT", {"default": 120.0, **RANGE}),
                "sigma_min": ("FLOAT", {"default": 0.002, **RANGE}),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "advanced/model"

    def patch(self, model, sampling, sigma_max, sigma_min):
        if sampling in EDM_UNSUPPORTED:
            raise ValueError(f"ModelSamplingContinuousEDM: {sampling!r} is not supported for SD models "
                             f"(supported: {', '.join(EDM_SAMPLING)})")
        prediction, sigma_data = EDM_SAMPLING[sampling]
        return (model.with_sampling_config(prediction=prediction, schedule="continuous_edm", sigma_min=sigma_min,
                                           sigma_max=sigma_max, sigma_data=sigma_data),)


class ModelSamplingContinuousV:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "sampling": (["v_prediction"],),
                "sigma_max": ("FLOAT", {"default": 500.0, **RANGE}),
                "sigma_min": ("FLOAT", {"default": 0.03, **RANGE}),
            }
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "advanced/model"

    def patch(self, model, sampling, sigma_max, sigma_min):
        return (model.with_sampling_config(prediction=sampling, schedule="continuous_v", sigma_min=sigma_min,
                                           sigma_max=sigma_max, sigma_data=1.0),)


NODE_CLASS_MAPPINGS = {
    "ModelSamplingDiscrete": ModelSamplingDiscrete,
    "ModelSamplingContinuousEDM": ModelSamplingContinuousEDM,
    "ModelSamplingContinuousV": ModelSamplingContinuousV,
}
