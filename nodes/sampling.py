"""Sampling nodes: KSampler, the custom-sampling split (schedulers, sampler select, SamplerCustom),
inpainting latents. All math lives in diffusion.sampling."""

from __future__ import annotations

import io
import math
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from diffusion import sampling
from diffusion.sampling.noise import MAX_SEED
from diffusion.sampling.preview import PreviewStream
from diffusion.sampling.schedulers import get_sigmas_exponential, get_sigmas_karras, sd_turbo_schedule
from engine import runtime

SEED = ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True})
STEPS = ("INT", {"default": 20, "min": 1, "max": 10000})
CFG = ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01})
SAMPLER_NAME = (list(sampling.SAMPLER_NAMES),)
SCHEDULER_NAME = (list(sampling.SCHEDULER_NAMES), {"default": "normal"})
DENOISE = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})
SIGMA = {"min": 0.0, "max": 5000.0, "step": 0.01, "round": False}
PREVIEW_MAX_SIZE = 512


# --- progress and previews -------------------------------------------------------------------


def _preview_settings() -> tuple[str, int]:
    """(--preview-method, --preview-size); no previews outside a running app."""
    try:
        settings = runtime.services().settings
    except LookupError:
        return "none", PREVIEW_MAX_SIZE
    method = str(settings.get("preview_method", "none") or "none")
    return method, int(settings.get("preview_size", PREVIEW_MAX_SIZE) or PREVIEW_MAX_SIZE)


def encode_preview_jpeg(rgb: torch.Tensor, max_size: int = PREVIEW_MAX_SIZE) -> bytes:
    """uint8 ``[h,w,3]`` → small JPEG bytes for the websocket."""
    image = Image.fromarray(rgb.numpy())
    if max(image.size) > max_size:
        image.thumbnail((max_size, max_size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def step_callback(model: Any):
    """Per-step hook: interrupt check, progress, and latent2rgb previews when enabled.

    Previews run through a :class:`PreviewStream`: computed on the model's device, copied and
    JPEG-encoded off this thread, so a step never waits for them; each progress event carries the
    newest preview finished since the last one, and the last step's carries the final state.
    TAESD previews are not available yet, so ``taesd`` falls back to latent2rgb like ComfyUI does
    without the decoder files.
    """
    method, max_size = _preview_settings()
    latent_format = getattr(model, "latent_format", None)
    stream = None
    if method in ("auto", "latent2rgb", "taesd") and latent_format is not None:
        device = getattr(model, "load_device", "cpu")
        stream = PreviewStream(latent_format, lambda rgb: ("JPEG", encode_preview_jpeg(rgb, max_size)), device)

    def on_step(step: int, total: int, x0: torch.Tensor) -> None:
        nonlocal stream
        runtime.check_interrupt()
        preview = None
        if stream is not None:
            preview = stream.offer(step, total, x0)
            if step >= total - 1:
                preview = stream.close() or preview
                stream = None
        runtime.report_progress(step + 1, total, preview)

    return on_step


# --- KSampler --------------------------------------------------------------------------------


class KSampler:
    DESCRIPTION = "Denoises the latent image with the model, guided by the positive and negative prompts."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "seed": SEED,
                "steps": STEPS,
                "cfg": CFG,
                "sampler_name": SAMPLER_NAME,
                "scheduler": SCHEDULER_NAME,
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent_image": ("LATENT",),
                "denoise": DENOISE,
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0):
        return (sampling.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                         latent_image, denoise=denoise, callback=step_callback(model)),)


class KSamplerAdvanced:
    DESCRIPTION = "KSampler over a window of steps: hand a partly denoised latent to another sampler."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "add_noise": (["enable", "disable"],),
                "noise_seed": SEED,
                "steps": STEPS,
                "cfg": CFG,
                "sampler_name": SAMPLER_NAME,
                "scheduler": SCHEDULER_NAME,
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent_image": ("LATENT",),
                "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
                "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
                "return_with_leftover_noise": (["disable", "enable"],),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "sampling"

    def sample(self, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
               latent_image, start_at_step, end_at_step, return_with_leftover_noise, denoise=1.0):
        return (sampling.common_ksampler(
            model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
            denoise=denoise, add_noise=add_noise != "disable", start_step=start_at_step, last_step=end_at_step,
            force_full_denoise=return_with_leftover_noise != "enable", callback=step_callback(model),
        ),)


# --- custom sampling -------------------------------------------------------------------------


class KSamplerSelect:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"sampler_name": SAMPLER_NAME}}

    RETURN_TYPES = ("SAMPLER",)
    FUNCTION = "get_sampler"
    CATEGORY = "sampling/custom_sampling/samplers"

    def get_sampler(self, sampler_name):
        return (sampling.Sampler(sampler_name),)


class BasicScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "scheduler": SCHEDULER_NAME, "steps": STEPS, "denoise": DENOISE}}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, model, scheduler, steps, denoise):
        ms = sampling.model_sampling_for(model)
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.zeros(0),)
            return (sampling.calculate_sigmas(ms, scheduler, int(steps / denoise))[-(steps + 1):],)
        return (sampling.calculate_sigmas(ms, scheduler, steps),)


class KarrasScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": STEPS,
                "sigma_max": ("FLOAT", {"default": 14.614642, **SIGMA}),
                "sigma_min": ("FLOAT", {"default": 0.0291675, **SIGMA}),
                "rho": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 100.0, "step": 0.01, "round": False}),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, steps, sigma_max, sigma_min, rho):
        _check_range(sigma_min, sigma_max)
        return (get_sigmas_karras(steps, sigma_min, sigma_max, rho),)


class ExponentialScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": STEPS,
                "sigma_max": ("FLOAT", {"default": 14.614642, **SIGMA}),
                "sigma_min": ("FLOAT", {"default": 0.0291675, **SIGMA}),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, steps, sigma_max, sigma_min):
        _check_range(sigma_min, sigma_max)
        return (get_sigmas_exponential(steps, sigma_min, sigma_max),)


def _check_range(sigma_min: float, sigma_max: float) -> None:
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


class SDTurboScheduler:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "steps": ("INT", {"default": 1, "min": 1, "max": 10}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"

    def get_sigmas(self, model, steps, denoise):
        return (sd_turbo_schedule(sampling.model_sampling_for(model), steps, denoise),)


class SamplerCustom:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL",),
                "add_noise": ("BOOLEAN", {"default": True}),
                "noise_seed": SEED,
                "cfg": CFG,
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "sampler": ("SAMPLER",),
                "sigmas": ("SIGMAS",),
                "latent_image": ("LATENT",),
            }
        }

    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("output", "denoised_output")
    FUNCTION = "sample"
    CATEGORY = "sampling/custom_sampling"

    def sample(self, model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas, latent_image):
        return sampling.sample_custom(model, sampler, sigmas, positive, negative, cfg, latent_image,
                                      add_noise=add_noise, seed=noise_seed, callback=step_callback(model))


# --- inpainting ------------------------------------------------------------------------------


class SetLatentNoiseMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "mask": ("MASK",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "set_mask"
    CATEGORY = "latent/inpaint"

    def set_mask(self, samples, mask):
        out = dict(samples)
        out["noise_mask"] = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        return (out,)


def _mask_like(mask: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    mask = mask.float().reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
    return F.interpolate(mask, size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")


def _crop_to_multiple(pixels: torch.Tensor, mask: torch.Tensor, multiple: int):
    """Centre-crop pixels and mask so both sides are multiples of the VAE's downscale."""
    h, w = (pixels.shape[1] // multiple) * multiple, (pixels.shape[2] // multiple) * multiple
    if (h, w) == tuple(pixels.shape[1:3]):
        return pixels, mask
    if h == 0 or w == 0:
        raise ValueError(f"image of {pixels.shape[2]}x{pixels.shape[1]} is smaller than {multiple} pixels")
    y0, x0 = (pixels.shape[1] % multiple) // 2, (pixels.shape[2] % multiple) // 2
    return pixels[:, y0 : y0 + h, x0 : x0 + w, :], mask[:, :, y0 : y0 + h, x0 : x0 + w]


def _grey_out(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Set masked pixels to mid-grey so the encoder sees no trace of what will be repainted."""
    keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)
    return (pixels[..., :3] - 0.5) * keep + 0.5


def _downscale(vae: Any) -> int:
    return int(vae.spacial_compression_encode())


class VAEEncodeForInpaint:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "pixels": ("IMAGE",),
                "vae": ("VAE",),
                "mask": ("MASK",),
                "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent/inpaint"

    def encode(self, vae, pixels, mask, grow_mask_by=6):
        mask = _mask_like(mask, pixels)
        pixels, mask = _crop_to_multiple(pixels, mask, _downscale(vae))
        if grow_mask_by == 0:
            grown = mask
        else:
            # Grow the mask a little so the repainted region blends seamlessly in latent space.
            kernel = torch.ones((1, 1, grow_mask_by, grow_mask_by))
            padding = math.ceil((grow_mask_by - 1) / 2)
            grown = torch.clamp(F.conv2d(mask.round(), kernel, padding=padding), 0, 1)
            grown = grown[:, :, : mask.shape[2], : mask.shape[3]]
        latent = vae.encode(_grey_out(pixels, mask))
        return ({"samples": latent, "noise_mask": grown.round()},)


class InpaintModelConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "vae": ("VAE",),
                "pixels": ("IMAGE",),
                "mask": ("MASK",),
                "noise_mask": ("BOOLEAN", {"default": True}),
            }
        }

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "encode"
    CATEGORY = "conditioning/inpaint"

    def encode(self, positive, negative, pixels, vae, mask, noise_mask=True):
        mask = _mask_like(mask, pixels)
        pixels, mask = _crop_to_multiple(pixels, mask, _downscale(vae))
        concat_latent = vae.encode(_grey_out(pixels, mask))
        latent: dict[str, Any] = {"samples": vae.encode(pixels[..., :3])}
        if noise_mask:
            latent["noise_mask"] = mask
        extra = {"concat_latent_image": concat_latent, "concat_mask": mask}
        return (_with_options(positive, extra), _with_options(negative, extra), latent)


def _with_options(conditioning: list, extra: dict[str, Any]) -> list:
    return [[tensor, {**options, **extra}] for tensor, options in conditioning]


NODE_CLASS_MAPPINGS = {
    "KSampler": KSampler,
    "KSamplerAdvanced": KSamplerAdvanced,
    "KSamplerSelect": KSamplerSelect,
    "BasicScheduler": BasicScheduler,
    "KarrasScheduler": KarrasScheduler,
    "ExponentialScheduler": ExponentialScheduler,
    "SDTurboScheduler": SDTurboScheduler,
    "SamplerCustom": SamplerCustom,
    "SetLatentNoiseMask": SetLatentNoiseMask,
    "VAEEncodeForInpaint": VAEEncodeForInpaint,
    "InpaintModelConditioning": InpaintModelConditioning,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "KSampler": "KSampler",
    "KSamplerAdvanced": "KSampler (Advanced)",
    "VAEEncodeForInpaint": "VAE Encode (for Inpainting)",
    "SetLatentNoiseMask": "Set Latent Noise Mask",
    "InpaintModelConditioning": "InpaintModelConditioning",
}
