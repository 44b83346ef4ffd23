"""Sampling nodes: ComfyUI inputs and defaults, progress, previews, interrupts, inpaint latents."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from diffusion.latent_formats import SD15
from engine import runtime
from engine.errors import InterruptedByUser
from engine.interrupt import InterruptFlag
from engine.paths import FolderPaths
from nodes import sampling as nodes
from tests.sampling.fakes import FakeModelHandle, FakeSamplingConfig, cond


def _context(tmp_path, preview_method="latent2rgb", interrupt=None):
    events = []
    services = runtime.Services(paths=FolderPaths(tmp_path), settings={"preview_method": preview_method})
    context = runtime.NodeContext("p1", "3", services, interrupt=interrupt,
                                  on_progress=lambda v, t, preview: events.append((v, t, preview)))
    return runtime.node_context(context), events


def _ksampler(model=None, steps=4, latent=None):
    latent = latent or {"samples": torch.zeros(1, 4, 8, 8)}
    return nodes.KSampler().sample(model or FakeModelHandle(), 1, steps, 7.0, "euler", "normal", cond(1.0), cond(0.0),
                                   latent, 1.0)[0]


def test_ksampler_inputs_match_comfyui():
    required = nodes.KSampler.INPUT_TYPES()["required"]
    assert list(required) == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                              "latent_image", "denoise"]
    assert required["seed"][1] == {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}
    assert required["steps"][1] == {"default": 20, "min": 1, "max": 10000}
    assert required["cfg"][1]["default"] == 8.0 and required["cfg"][1]["max"] == 100.0
    assert required["sampler_name"][0][0] == "euler" and required["scheduler"][1]["default"] == "normal"
    assert nodes.KSampler.CATEGORY == "sampling"


def test_ksampler_advanced_inputs_match_comfyui():
    required = nodes.KSamplerAdvanced.INPUT_TYPES()["required"]
    assert required["add_noise"][0] == ["enable", "disable"]
    assert required["return_with_leftover_noise"][0] == ["disable", "enable"]
    assert required["end_at_step"][1]["default"] == 10000


def test_progress_is_reported_every_step_with_jpeg_previews(tmp_path):
    scope, events = _context(tmp_path)
    with scope:
        _ksampler(steps=4)
    assert [(v, t) for v, t, _ in events] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    # Previews are encoded off the step's thread: each lands with a later step's progress, and the
    # last step waits for the final one, so the sampler's end state is always shown.
    assert events[-1][2] is not None
    kind, data = events[-1][2]
    assert kind == "JPEG"
    assert Image.open(io.BytesIO(data)).size == (8, 8)


def test_previews_are_off_when_the_preview_method_is_none(tmp_path):
    scope, events = _context(tmp_path, preview_method="none")
    with scope:
        _ksampler(steps=2)
    assert all(preview is None for _, _, preview in events)


def test_interrupt_stops_sampling_at_the_next_step(tmp_path):
    flag = InterruptFlag()
    flag.set()
    scope, events = _context(tmp_path, interrupt=flag)
    with scope, pytest.raises(InterruptedByUser):
        _ksampler(steps=10)
    assert events == []


def test_preview_colours_come_from_the_latent_format_factors():
    from diffusion.sampling.preview import latent_to_rgb

    latent = torch.zeros(1, 4, 2, 2)
    latent[:, 0] = 1.0
    rgb = latent_to_rgb(latent, SD15)
    expected = ((torch.tensor(SD15.latent_rgb_factors[0]) + 1) / 2 * 255).round().to(torch.uint8)
    assert torch.equal(rgb[0, 0], expected)


def test_split_custom_sampling_equals_ksampler():
    model = FakeModelHandle()
    sigmas = nodes.BasicScheduler().get_sigmas(model, "karras", 5, 1.0)[0]
    sampler = nodes.KSamplerSelect().get_sampler("dpmpp_2m")[0]
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out, denoised = nodes.SamplerCustom().sample(model, True, 9, 6.0, cond(1.0), cond(0.0), sampler, sigmas, latent)
    reference = nodes.KSampler().sample(model, 9, 5, 6.0, "dpmpp_2m", "karras", cond(1.0), cond(0.0), latent, 1.0)[0]
    assert torch.equal(out["samples"], reference["samples"])
    assert denoised["samples"].shape == out["samples"].shape


def test_karras_scheduler_node_and_range_errors():
    sigmas = nodes.KarrasScheduler().get_sigmas(10, 14.614642, 0.0291675, 7.0)[0]
    assert len(sigmas) == 11 and sigmas[-1] == 0
    with pytest.raises(ValueError, match="sigma_min"):
        nodes.ExponentialScheduler().get_sigmas(10, 1.0, 2.0)


def test_sd_turbo_scheduler_uses_timesteps_999_899_and_so_on():
    from diffusion.sampling.model_sampling import model_sampling_from_config

    ms = model_sampling_from_config(FakeSamplingConfig())
    sigmas = nodes.SDTurboScheduler().get_sigmas(FakeModelHandle(), 2, 1.0)[0]
    assert torch.allclose(sigmas, torch.stack([ms.sigmas[999], ms.sigmas[899], torch.tensor(0.0)]))


def test_set_latent_noise_mask_reshapes_without_touching_the_input():
    samples = {"samples": torch.zeros(1, 4, 8, 8)}
    out = nodes.SetLatentNoiseMask().set_mask(samples, torch.ones(64, 64))[0]
    assert out["noise_mask"].shape == (1, 1, 64, 64) and "noise_mask" not in samples


class _FakeVAE:
    def __init__(self):
        self.seen = []

    def spacial_compression_encode(self):
        return 8

    def encode(self, pixels):
        self.seen.append(pixels.clone())
        return pixels.permute(0, 3, 1, 2)[:, :3, ::8, ::8].repeat(1, 2, 1, 1)[:, :4]


def test_vae_encode_for_inpaint_greys_the_masked_pixels_and_grows_the_mask():
    vae = _FakeVAE()
    pixels = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(64, 64)
    mask[20:30, 20:30] = 1
    latent = nodes.VAEEncodeForInpaint().encode(vae, pixels, mask, grow_mask_by=6)[0]
    seen = vae.seen[0]
    assert torch.all(seen[0, 20:30, 20:30] == 0.5) and torch.equal(seen[0, :20], pixels[0, :20])
    grown = latent["noise_mask"]
    assert grown.shape == (1, 1, 64, 64) and grown[0, 0, 18, 25] == 1 and grown[0, 0, 32, 25] == 1 and grown[0, 0, 10, 10] == 0


def test_inpaint_model_conditioning_adds_concat_inputs_and_noise_mask():
    vae = _FakeVAE()
    pixels = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1
    positive, negative, latent = nodes.InpaintModelConditioning().encode(cond(1.0), cond(0.0), pixels, vae, mask)
    for c in (positive, negative):
        assert set(c[0][1]) >= {"concat_latent_image", "concat_mask"}
    assert latent["noise_mask"].shape == (1, 1, 64, 64)
    model = FakeModelHandle(inpaint=True)
    nodes.KSampler().sample(model, 1, 2, 5.0, "euler", "normal", positive, negative, latent, 1.0)
    assert model.calls[0]["concat"].shape[1] == 5


def test_node_mappings_export_every_sampling_node():
    assert {"KSampler", "KSamplerAdvanced", "SamplerCustom", "KSamplerSelect", "BasicScheduler", "KarrasScheduler",
            "ExponentialScheduler", "SDTurboScheduler", "SetLatentNoiseMask",
            "VAEEncodeForInpaint", "InpaintModelConditioning"} <= set(nodes.NODE_CLASS_MAPPINGS)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_preview_stream_is_rate_limited_and_keeps_one_preview_in_flight():
    from diffusion.sampling.preview import PreviewStream

    clock, encoded, gate = _Clock(), [], __import__("threading").Event()

    def encode(rgb):
        gate.wait(5)
        encoded.append(rgb.clone())
        return len(encoded)

    stream = PreviewStream(SD15, encode, "cpu", min_interval=0.1, clock=clock)
    x0 = torch.randn(1, 4, 4, 4)
    assert stream.offer(0, 100, x0) is None and stream.started == 1  # the first step always starts one
    clock.now = 0.5
    assert stream.offer(1, 100, x0) is None and stream.started == 1  # still encoding: none started
    gate.set()
    stream._pending.result(5)
    clock.now = 0.55
    assert stream.offer(2, 100, x0) == 1  # the finished one is handed out...
    assert stream.started == 2  # ...and, 50 ms after the last start, a new one may start
    stream._pending.result(5)
    clock.now = 0.56
    assert stream.offer(3, 100, x0) == 2 and stream.started == 2  # 10 ms after: too soon
    clock.now = 0.57
    assert stream.offer(99, 100, x0) is None and stream.started == 3  # the last step always starts one
    assert stream.close() == 3


def test_preview_stream_image_is_the_latent_rgb_map_of_the_first_batch_item():
    from diffusion.sampling.preview import PreviewStream, latent_to_rgb

    x0 = torch.randn(2, 4, 3, 5)
    stream = PreviewStream(SD15, lambda rgb: rgb.clone(), "cpu")
    stream.offer(0, 1, x0)
    rgb = stream.close()
    assert rgb.dtype == torch.uint8 and rgb.shape == (3, 5, 3)
    expected = torch.einsum("chw,cr->hwr", x0[0], torch.tensor(SD15.latent_rgb_factors))
    assert torch.equal(rgb, ((expected + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8))
    assert torch.equal(latent_to_rgb(x0, SD15), rgb)


def test_latent_from_batch_node_then_ksampler_matches_that_batch_entry():
    from nodes.latent import LatentFromBatch

    batch = {"samples": torch.zeros(4, 4, 8, 8)}
    whole = _ksampler(latent=batch, steps=3)
    picked = LatentFromBatch().frombatch(batch, 2, 2)[0]
    part = _ksampler(latent=picked, steps=3)
    assert torch.allclose(part["samples"], whole["samples"][2:4], atol=1e-6)
