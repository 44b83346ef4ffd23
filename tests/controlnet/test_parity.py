"""Our ControlNet residuals and the controlled UNet output against diffusers' ``ControlNetModel`` +
``UNet2DConditionModel`` on the same tiny files, in both file layouts (fp32, max |Δ| ≤ 1e-4)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.files import read_state_dict
from diffusion.controlnet import load_controlnet
from diffusion.controlnet.formats import ldm_controlnet_tensors
from diffusion.controlnet.tiny import (
    base_variant,
    diffusers_controlnet_config,
    tiny_controlnet_config,
    to_diffusers_layout,
)
from tests.models.diffusers_reference import diffusers_unet

TOLERANCE = 1e-4


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def diffusers_controlnet(path, variant: str, layout: str):
    """diffusers' ControlNetModel holding the file's weights (LDM files through diffusers' converter)."""
    from diffusers import ControlNetModel

    config = tiny_controlnet_config(variant)
    state_dict, _ = read_state_dict(path)
    if layout != "diffusers":
        state_dict = to_diffusers_layout(ldm_controlnet_tensors(state_dict)[0], config)
    with torch.device("meta"):
        model = ControlNetModel(**diffusers_controlnet_config(config))
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval().float()


def _inputs(model, family: str, batch: int, generator: torch.Generator):
    cfg = model.unet_config
    x = torch.randn(batch, 4, 8, 8, generator=generator)
    context = torch.randn(batch, 77, cfg.context_dim, generator=generator)
    if cfg.adm_in_channels is None:
        return x, context, None, None
    pooled = torch.randn(batch, cfg.adm_in_channels - 6 * 256, generator=generator)
    cond = {"pooled_output": pooled, "width": 1024, "height": 768, "crop_w": 16, "crop_h": 32,
            "target_width": 1024, "target_height": 1024}
    time_ids = torch.tensor([[768, 1024, 32, 16, 1024, 1024]] * batch, dtype=torch.float32)
    return x, context, model.encode_adm(cond, batch), {"text_embeds": pooled, "time_ids": time_ids}


@pytest.mark.parametrize("variant", ["sd1", "sdxl", "sdxl-small"])
@pytest.mark.parametrize("layout", ["ldm", "diffusers"])
def test_residuals_and_controlled_unet_match_diffusers(variant, layout, tiny_checkpoint, tiny_controlnet, cpu_manager):
    path = tiny_controlnet(variant, layout)
    control = load_controlnet(path, cpu_manager)
    checkpoint = tiny_checkpoint(base_variant(variant), text=False)
    model = load_checkpoint(checkpoint, cpu_manager, load_clip=False, load_vae=False).model
    reference_cn = diffusers_controlnet(path, variant, layout)
    reference_unet = diffusers_unet(read_state_dict(checkpoint)[0], model.unet_config)

    generator = torch.Generator().manual_seed(3)
    batch = 2
    x, context, y, added = _inputs(model, control.family, batch, generator)
    hint = torch.rand(batch, 3, 64, 64, generator=generator)
    t = torch.tensor([999.0, 321.0])
    applied = control.copy().set_cond_hint(hint, 0.7)
    residuals = applied.get_control(x, t, context, y=y)
    with torch.no_grad():
        down, mid = reference_cn(x, t, encoder_hidden_states=context, controlnet_cond=hint, conditioning_scale=0.7,
                                 added_cond_kwargs=added, return_dict=False)
    assert len(residuals["output"]) == len(down) and len(residuals["middle"]) == 1
    assert max(r.abs().max().item() for r in down) > 1e-3, "degenerate residuals would prove nothing"
    for ours, theirs in zip(residuals["output"] + residuals["middle"], list(down) + [mid]):
        assert _max_diff(ours, theirs) <= TOLERANCE

    ours = model.apply_model(x, t, context, y=y, control=residuals)
    with torch.no_grad():
        theirs = reference_unet(x, t, encoder_hidden_states=context, added_cond_kwargs=added,
                                down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        plain = reference_unet(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
    assert _max_diff(theirs, plain) > 1e-3, "the control must change the output for this test to mean anything"
    assert _max_diff(ours, theirs) <= TOLERANCE


def test_a_hint_of_another_size_is_centre_cropped_and_resized_nearest_exact(tiny_controlnet, cpu_manager):
    path = tiny_controlnet("sd1", "ldm")
    control = load_controlnet(path, cpu_manager)
    reference_cn = diffusers_controlnet(path, "sd1", "ldm")
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 8, 12, generator=generator)  # pixel size 64×96
    context = torch.randn(1, 77, 32, generator=generator)
    hint = torch.rand(1, 3, 90, 100, generator=generator)  # wider aspect 0.9 vs 0.667: crop rows
    t = torch.tensor([500.0])
    residuals = control.copy().set_cond_hint(hint).get_control(x, t, context)
    kept_rows = round(100 * 64 / 96)  # ComfyUI's centre crop to the target aspect ratio
    top = round((90 - kept_rows) / 2)
    fitted = F.interpolate(hint[:, :, top : 90 - top], size=(64, 96), mode="nearest-exact")
    with torch.no_grad():
        down, mid = reference_cn(x, t, encoder_hidden_states=context, controlnet_cond=fitted, return_dict=False)
    for ours, theirs in zip(residuals["output"] + residuals["middle"], list(down) + [mid]):
        assert _max_diff(ours, theirs) <= TOLERANCE
