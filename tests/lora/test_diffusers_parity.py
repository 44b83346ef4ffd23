"""kohya and PEFT LoRAs on the tiny checkpoints: our UNet and text encoders with the LoRA equal
diffusers' ``load_lora_into_unet`` / ``load_lora_into_text_encoder`` (PEFT) on the same weights."""

import copy

import pytest
import torch

from diffusion.checkpoint.files import read_state_dict
from diffusion.checkpoint.loader import load_checkpoint
from diffusion.lora.apply import apply_lora
from diffusion.lora.tiny import random_lora, tiny_lora_target
from tests.models.diffusers_reference import diffusers_unet

pytest.importorskip("peft")
from diffusers.loaders import StableDiffusionLoraLoaderMixin, StableDiffusionXLLoraLoaderMixin

CASES = [("sd1", "kohya"), ("sd1", "peft"), ("sd2", "kohya"), ("sdxl", "kohya"), ("sdxl", "peft")]
TEXT_PREFIX = {"clip_l": "text_encoder", "clip_h": "text_encoder", "clip_g": "text_encoder_2"}


def _inputs(model, generator):
    """UNet inputs for ours (y) and diffusers (added_cond_kwargs) describing the same conditioning."""
    cfg = model.unet_config
    x = torch.randn(2, 4, 8, 8, generator=generator)
    t = torch.tensor([10.0, 700.0])
    context = torch.randn(2, 77, cfg.context_dim, generator=generator)
    if cfg.adm_in_channels is None:
        return x, t, context, None, None
    pooled = torch.randn(2, cfg.adm_in_channels - 6 * 256, generator=generator)
    cond = {"pooled_output": pooled, "width": 1024, "height": 768, "crop_w": 16, "crop_h": 32,
            "target_width": 1024, "target_height": 1024}
    time_ids = torch.tensor([[768, 1024, 32, 16, 1024, 1024]] * 2, dtype=torch.float32)
    return x, t, context, model.encode_adm(cond, 2), {"text_embeds": pooled, "time_ids": time_ids}


@pytest.mark.parametrize(("variant", "fmt"), CASES)
def test_lora_outputs_equal_diffusers(variant, fmt, tiny_checkpoint, cpu_manager):
    path = tiny_checkpoint(variant)
    loaded = load_checkpoint(path, cpu_manager, load_vae=False)
    model, clip = loaded.model, loaded.clip
    lora = random_lora(fmt, tiny_lora_target(variant), rank=4, seed=1)
    mixin = StableDiffusionXLLoraLoaderMixin if variant == "sdxl" else StableDiffusionLoraLoaderMixin

    # reference networks from the same unpatched weights
    state, _ = read_state_dict(path)
    reference_unet = diffusers_unet(state, model.unet_config)
    reference_text = {e.slot.name: copy.deepcopy(e.model) for e in clip.encoders.values()}

    applied = apply_lora(model, clip, lora, 1.0, 1.0, "tiny")
    assert applied.unused_keys == []

    converted, alphas = mixin.lora_state_dict(dict(lora), unet_config=reference_unet.config)
    mixin.load_lora_into_unet(converted, alphas, reference_unet, adapter_name="tiny")
    for name, text_model in reference_text.items():
        mixin.load_lora_into_text_encoder(converted, alphas, text_model, prefix=TEXT_PREFIX[name], adapter_name="tiny")

    generator = torch.Generator().manual_seed(0)
    x, t, context, y, added = _inputs(model, generator)
    ours = applied.model.apply_model(x, t, context, y)
    with torch.no_grad():
        expected = reference_unet(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
    unpatched = model.apply_model(x, t, context, y)
    assert (ours - unpatched).abs().max() > 1e-3, "the LoRA must change the UNet output"
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)

    ids = torch.randint(0, 49406, (1, 77), generator=generator)
    for encoder in applied.clip.encoders.values():
        encoder.prepare(applied.clip.patches, applied.clip.patches_uuid)
        with torch.no_grad():
            ours_text = encoder.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
            expected_text = reference_text[encoder.slot.name](input_ids=ids, output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(ours_text, expected_text, atol=1e-4, rtol=1e-4)
        encoder.prepare(clip.patches, clip.patches_uuid)  # the input CLIP is unpatched
        with torch.no_grad():
            original = encoder.model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        assert (original - ours_text).abs().max() > 1e-3, "the LoRA must change the text encoder"
