"""Classifier-free guidance: batching, cfg 1 shortcut, areas, masks, strength, timestep ranges."""

from __future__ import annotations

import pytest
import torch

from diffusion.sampling.guidance import CFGDenoiser, ConditioningError, prepare_conds
from diffusion.sampling.model_sampling import model_sampling_from_config
from tests.sampling.fakes import FakeModelHandle, FakeSamplingConfig, cond

MS = model_sampling_from_config(FakeSamplingConfig())
SHAPE = torch.Size((2, 4, 16, 16))
X = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)) * 3
SIGMA = torch.full((2,), 3.0)


def _denoiser(model, positive, negative, cfg=7.0, **kw):
    pos = prepare_conds(positive, model, MS, SHAPE)
    neg = prepare_conds(negative, model, MS, SHAPE)
    return CFGDenoiser(model, MS, pos, neg, cfg, **kw)


def _single(model, conditioning, x=X, sigma=SIGMA):
    """x0 for one conditioning evaluated alone (cfg 1)."""
    return _denoiser(model, conditioning, [], cfg=1.0)(x, sigma)


def test_cond_and_uncond_run_in_one_batched_model_call():
    model = FakeModelHandle()
    out = _denoiser(model, cond(1.0), cond(-1.0), cfg=7.0)(X, SIGMA)
    assert len(model.calls) == 1 and model.calls[0]["x"][0] == 4
    cond_x0, uncond_x0 = _single(FakeModelHandle(), cond(1.0)), _single(FakeModelHandle(), cond(-1.0))
    assert torch.allclose(out, uncond_x0 + 7.0 * (cond_x0 - uncond_x0), atol=1e-5)


def test_cfg_one_skips_the_uncond_pass():
    model = FakeModelHandle()
    out = _denoiser(model, cond(1.0), cond(-1.0), cfg=1.0)(X, SIGMA)
    assert len(model.calls) == 1 and model.calls[0]["x"][0] == 2
    assert torch.equal(out, _single(FakeModelHandle(), cond(1.0)))


def test_batch_limit_splits_calls_without_changing_the_result():
    together = _denoiser(FakeModelHandle(), cond(1.0), cond(-1.0))(X, SIGMA)
    model = FakeModelHandle()
    split = _denoiser(model, cond(1.0), cond(-1.0), max_batch=2)(X, SIGMA)
    assert len(model.calls) == 2
    assert torch.allclose(together, split, atol=1e-6)


def test_different_prompt_lengths_are_batched_by_repeating_the_shorter_context():
    model = FakeModelHandle()
    out = _denoiser(model, cond(1.0, tokens=154), cond(-1.0, tokens=77))(X, SIGMA)
    assert len(model.calls) == 1 and model.calls[0]["context"][1] == 154
    separate = _denoiser(FakeModelHandle(), cond(1.0, tokens=154), cond(-1.0, tokens=77), max_batch=2)(X, SIGMA)
    assert torch.allclose(out, separate, atol=1e-6)


def test_area_conditioning_only_changes_its_area():
    full = _single(FakeModelHandle(), cond(1.0))
    mixed = _single(FakeModelHandle(), cond(1.0) + cond(5.0, area=(8, 8, 0, 0)))
    area_alone = _single(FakeModelHandle(), cond(5.0))
    assert torch.allclose(mixed[:, :, 8:, :], full[:, :, 8:, :])
    assert torch.allclose(mixed[:, :, :, 8:], full[:, :, :, 8:])
    # The corner away from the feathered inner edges averages both prompts equally.
    assert torch.allclose(mixed[:, :, 0, 0], (full[:, :, 0, 0] + area_alone[:, :, 0, 0]) / 2, atol=1e-5)


def test_area_model_call_sees_only_the_cropped_latent():
    model = FakeModelHandle()
    _single(model, cond(5.0, area=(8, 4, 2, 6)))
    assert model.calls[0]["x"][2:] == (8, 4)


def test_percentage_area_is_scaled_to_the_latent():
    (chunk,) = prepare_conds(cond(1.0, area=("percentage", 0.5, 0.25, 0.5, 0.0)), FakeModelHandle(), MS, SHAPE)
    assert chunk.area == (8, 4, 8, 0)


def test_strength_weights_an_entry_in_the_average():
    a, b = _single(FakeModelHandle(), cond(1.0)), _single(FakeModelHandle(), cond(4.0))
    mixed = _single(FakeModelHandle(), cond(1.0) + cond(4.0, strength=3.0))
    assert torch.allclose(mixed, (a + 3 * b) / 4, atol=1e-5)


def test_mask_limits_an_entry_to_the_masked_pixels():
    mask = torch.zeros(1, 16, 16)
    mask[:, :, 8:] = 1.0
    a, b = _single(FakeModelHandle(), cond(1.0)), _single(FakeModelHandle(), cond(4.0))
    mixed = _single(FakeModelHandle(), cond(1.0) + cond(4.0, mask=mask))
    assert torch.allclose(mixed[..., :8], a[..., :8], atol=1e-6)
    assert torch.allclose(mixed[..., 8:], (a[..., 8:] + b[..., 8:]) / 2, atol=1e-5)


def test_set_area_to_bounds_crops_the_model_call_to_the_mask():
    mask = torch.zeros(1, 16, 16)
    mask[:, 2:6, 3:12] = 1.0
    model = FakeModelHandle()
    _single(model, cond(4.0, mask=mask, set_area_to_bounds=True))
    assert model.calls[0]["x"][2:] == (4, 9)


def test_timestep_range_in_percent_switches_conditioning_on_and_off():
    late = cond(4.0, timestep_start=0.5, timestep_end=1.0)
    early = cond(1.0, timestep_start=0.0, timestep_end=0.5)
    high, low = torch.full((2,), 14.0), torch.full((2,), 0.1)
    both = early + late
    assert torch.allclose(_single(FakeModelHandle(), both, sigma=high), _single(FakeModelHandle(), cond(1.0), sigma=high))
    assert torch.allclose(_single(FakeModelHandle(), both, sigma=low), _single(FakeModelHandle(), cond(4.0), sigma=low))


def test_comfyui_start_end_percent_keys_are_understood():
    (chunk,) = prepare_conds(cond(1.0, start_percent=0.2, end_percent=0.6), FakeModelHandle(), MS, SHAPE)
    assert chunk.sigma_high == pytest.approx(MS.percent_to_sigma(0.2))
    assert chunk.sigma_low == pytest.approx(MS.percent_to_sigma(0.6))


def test_sdxl_adm_vector_reaches_the_model():
    model = FakeModelHandle(family="sdxl", adm=True)
    _denoiser(model, cond(1.0, pooled_output=torch.ones(1, 8)), cond(-1.0, pooled_output=torch.zeros(1, 8)))(X, SIGMA)
    assert model.calls[0]["y"] == (4, 8)


def test_inpaint_model_gets_mask_and_masked_latent_channels():
    model = FakeModelHandle(inpaint=True)
    image = torch.randn(1, 4, 16, 16)
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 64:] = 1
    _single(model, cond(1.0, concat_latent_image=image, concat_mask=mask))
    concat = model.calls[0]["concat"]
    assert concat.shape == (2, 5, 16, 16)
    assert torch.equal(concat[:, 0, :, :8], torch.zeros(2, 16, 8)) and torch.equal(concat[:, 0, :, 8:], torch.ones(2, 16, 8))
    # concat_latent_image is a raw VAE latent: scaled like the sampled latent, as ComfyUI's concat_cond
    assert torch.allclose(concat[:, 1:], model.latent_format.process_in(image).expand(2, -1, -1, -1))


def test_inpaint_model_without_mask_sees_a_blank_image_to_paint_everywhere():
    model = FakeModelHandle(inpaint=True)
    _single(model, cond(1.0))
    concat = model.calls[0]["concat"]
    assert torch.equal(concat[:, 0], torch.ones(2, 16, 16))
    assert torch.allclose(concat[0, 1:, 0, 0], torch.tensor([0.8223, -0.6876, 0.6364, 0.1380]))


def test_malformed_conditioning_is_a_clear_error():
    with pytest.raises(ConditioningError):
        prepare_conds([["not a tensor", {}]], FakeModelHandle(), MS, SHAPE)


def test_control_objects_get_each_batch_and_their_residuals_reach_the_model():
    class FakeControl:
        def __init__(self):
            self.seen = []

        def get_control(self, x, timestep, context, y=None, sigma=None, batched_number=1):
            self.seen.append((tuple(x.shape), tuple(timestep.shape), tuple(context.shape)))
            return {"output": [torch.zeros(1)]}

    control = FakeControl()
    model = FakeModelHandle()
    seen_controls = []
    original = model.apply_model

    def apply_model(x, timestep, context, y=None, concat=None, control=None, transformer_options=None):
        seen_controls.append(control)
        return original(x, timestep, context, y, concat, control)

    model.apply_model = apply_model
    _denoiser(model, cond(1.0, control=control), cond(-1.0))(X, SIGMA)
    assert control.seen == [((2, 4, 16, 16), (2,), (2, 77, 8))]  # only the controlled entry's batch
    assert {"output"} in [set(c) for c in seen_controls if c is not None]
    assert len(model.calls) == 2  # different controls are never batched together


def test_a_mask_batch_is_fitted_to_the_latent_batch():
    masks = torch.ones(3, 16, 16)
    out = _single(FakeModelHandle(), cond(1.0) + cond(2.0, mask=masks))
    assert out.shape == X.shape and torch.isfinite(out).all()


def test_an_area_prompt_gets_a_matching_uncond_over_the_same_area():
    model = FakeModelHandle()
    _denoiser(model, cond(1.0) + cond(5.0, area=(8, 4, 2, 6)), cond(-1.0))(X, SIGMA)
    crops = [call["x"] for call in model.calls if call["x"][2:] == (8, 4)]
    # The area prompt and its uncond copy share one batched call of the cropped latent.
    assert crops == [torch.Size((4, 4, 8, 4))]
