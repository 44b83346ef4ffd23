"""End to end on tiny random-weight checkpoints: txt2img, img2img, inpaint, v-prediction,
SDXL base → refiner hand-off, determinism. Small latents and few steps: the UNets are real."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from diffusion.checkpoint.loader import load_checkpoint
from diffusion.memory import ModelManager
from nodes import sampling as nodes
from nodes.clip import CLIPTextEncode
from tools.make_tiny_checkpoint import make_tiny_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    cache: dict[str, object] = {}

    def get(family: str):
        if family not in cache:
            path = make_tiny_checkpoint(family, root / f"tiny-{family}.safetensors")
            cache[family] = load_checkpoint(path, ModelManager("cpu"))
        return cache[family]

    return get


def _prompts(clip, positive="a red apple on a table", negative="blurry"):
    return CLIPTextEncode().encode(clip, positive)[0], CLIPTextEncode().encode(clip, negative)[0]


def _png(image: torch.Tensor) -> bytes:
    array = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def _txt2img(ck, seed=3, steps=2, sampler="euler", size=8):
    positive, negative = _prompts(ck.clip)
    latent = {"samples": torch.zeros(1, 4, size, size)}
    return nodes.KSampler().sample(ck.model, seed, steps, 7.0, sampler, "karras", positive, negative, latent, 1.0)[0]


def test_sd1_txt2img_is_byte_identical_across_runs(checkpoints):
    ck = checkpoints("sd1")
    first = _png(ck.vae.decode(_txt2img(ck)["samples"]))
    second = _png(ck.vae.decode(_txt2img(ck)["samples"]))
    assert first == second
    assert _png(ck.vae.decode(_txt2img(ck, seed=4)["samples"])) != first


def test_sd1_ancestral_and_sde_samplers_are_reproducible_on_a_real_unet(checkpoints):
    ck = checkpoints("sd1")
    # The ancestral samplers' seeded noise is covered on fakes; here the Brownian-tree path.
    assert torch.equal(_txt2img(ck, sampler="dpmpp_2m_sde")["samples"], _txt2img(ck, sampler="dpmpp_2m_sde")["samples"])


def test_sd1_img2img_keeps_the_image_structure_at_low_denoise(checkpoints):
    ck = checkpoints("sd1")
    pixels = torch.linspace(0, 1, 64).reshape(1, 1, 64, 1).expand(1, 64, 64, 3).contiguous()
    latent = {"samples": ck.vae.encode(pixels)}
    positive, negative = _prompts(ck.clip)
    low = nodes.KSampler().sample(ck.model, 1, 2, 5.0, "euler", "normal", positive, negative, latent, 0.2)[0]
    high = nodes.KSampler().sample(ck.model, 1, 2, 5.0, "euler", "normal", positive, negative, latent, 1.0)[0]
    assert torch.isfinite(low["samples"]).all()
    change = lambda out: (out["samples"] - latent["samples"]).abs().mean()  # noqa: E731
    assert change(low) < change(high)


def test_sd1_inpaint_with_noise_mask_keeps_unmasked_latent(checkpoints):
    ck = checkpoints("sd1")
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1
    latent = nodes.VAEEncodeForInpaint().encode(ck.vae, pixels, mask, grow_mask_by=0)[0]
    positive, negative = _prompts(ck.clip)
    out = nodes.KSampler().sample(ck.model, 1, 2, 5.0, "euler", "normal", positive, negative, latent, 1.0)[0]
    assert torch.allclose(out["samples"][..., :4], latent["samples"][..., :4], atol=1e-5)
    assert not torch.allclose(out["samples"][..., 4:], latent["samples"][..., 4:], atol=1e-3)


def test_nine_channel_inpaint_model_samples_with_inpaint_model_conditioning(checkpoints):
    ck = checkpoints("sd1-inpaint")
    assert ck.model.inpaint
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1
    positive, negative = _prompts(ck.clip)
    positive, negative, latent = nodes.InpaintModelConditioning().encode(positive, negative, pixels, ck.vae, mask)
    out = nodes.KSampler().sample(ck.model, 1, 2, 5.0, "dpmpp_2m", "karras", positive, negative, latent, 1.0)[0]
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    assert torch.allclose(out["samples"][..., :1, :], latent["samples"][..., :1, :], atol=1e-5)


def test_sd2_v_prediction_txt2img(checkpoints):
    ck = checkpoints("sd2-v")
    assert ck.model.sampling_config.prediction == "v_prediction"
    out = _txt2img(ck, sampler="dpmpp_2m")
    assert torch.isfinite(ck.vae.decode(out["samples"])).all()


def test_sdxl_base_to_refiner_handoff_with_ksampler_advanced(checkpoints):
    base, refiner = checkpoints("sdxl"), checkpoints("sdxl-refiner")
    positive, negative = _prompts(base.clip)
    r_positive, r_negative = _prompts(refiner.clip)
    empty = {"samples": torch.zeros(1, 4, 8, 8)}
    advanced = nodes.KSamplerAdvanced()
    half = advanced.sample(base.model, "enable", 7, 2, 6.0, "euler", "normal", positive, negative, empty,
                           0, 1, "enable")[0]
    final = advanced.sample(refiner.model, "disable", 7, 2, 6.0, "euler", "normal", r_positive, r_negative, half,
                            1, 10000, "disable")[0]
    # Leftover noise: the hand-off latent is still at σ of step 1, far from the refined result.
    assert half["samples"].std() > final["samples"].std()
    image = refiner.vae.decode(final["samples"])
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()


def test_ksampler_ddim_equals_diffusers_ddim_scheduler_on_the_tiny_sd1_unet(checkpoints):
    """The whole KSampler path (noise, √(1+σ²) start, c_in, rounded timesteps, eps → x0, Euler =
    DDIM) against diffusers' DDIMScheduler driving the same UNet in its own (VP) space."""
    from diffusers import DDIMScheduler

    from diffusion.sampling import model_sampling_for

    ck = checkpoints("sd1")
    positive, negative = _prompts(ck.clip)
    steps, seed = 4, 123
    out = nodes.KSampler().sample(ck.model, seed, steps, 1.0, "ddim", "simple", positive, negative,
                                  {"samples": torch.zeros(1, 4, 8, 8)}, 1.0)[0]["samples"]

    scheduler = DDIMScheduler(clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    table = model_sampling_for(ck.model).sigmas.double()
    scheduler.alphas_cumprod = 1 / (table**2 + 1)  # the same noise table (tested on its own elsewhere)
    scheduler.set_timesteps(steps)
    latents = torch.randn((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(seed))
    context = positive[0][0]
    for t in scheduler.timesteps:
        eps = ck.model.apply_model(latents, t.float().reshape(1), context)
        latents = scheduler.step(eps, t, latents).prev_sample.float()
    # float32 end to end (UNet, two different step formulas): observed 1.5e-5 on latents of size ~3.
    # KSampler's LATENT is raw; diffusers' loop stays in the model's scaled space.
    assert (ck.model.latent_format.process_in(out) - latents).abs().max() <= 1e-4
