"""Full-size architectures on the meta device: parameter counts and key sets of the released models."""

from __future__ import annotations

import pytest
import torch

from diffusion.checkpoint.arch import full_size_unet_config, full_size_vae_config
from diffusion.checkpoint.loader import build_meta_unet, build_meta_vae
from diffusion.checkpoint.tiny import tiny_unet_config
from tests.models.diffusers_reference import diffusers_unet_config

# Parameter counts of the released models (shared/reference/model-formats.md §8.1, from diffusers).
FULL_SIZE = [
    ("sd1", False, 859_520_964, 686),
    ("sd1", True, 859_535_364, 686),
    ("sd2", False, 865_910_724, 686),
    ("sdxl", False, 2_567_463_684, 1680),
    ("sdxl-refiner", False, 2_259_526_660, 1220),
]


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("family", "inpaint", "params", "keys"), FULL_SIZE)
def test_full_size_unet_parameter_and_key_counts(family, inpaint, params, keys):
    unet = build_meta_unet(full_size_unet_config(family, inpaint))
    assert _count(unet) == params
    assert len(unet.state_dict()) == keys


@pytest.mark.parametrize(("family", "inpaint"), [(f, i) for f, i, _, _ in FULL_SIZE])
def test_full_size_unet_matches_diffusers_parameter_count(family, inpaint):
    from diffusers import UNet2DConditionModel

    config = full_size_unet_config(family, inpaint)
    with torch.device("meta"):
        reference = UNet2DConditionModel(**diffusers_unet_config(config))
    assert _count(build_meta_unet(config)) == _count(reference)


def test_full_size_vae_parameter_and_key_counts():
    vae = build_meta_vae(full_size_vae_config())
    assert _count(vae) == 83_653_863
    assert _count(vae.encoder) + _count(vae.quant_conv) == 34_163_664
    assert _count(vae.decoder) + _count(vae.post_quant_conv) == 49_490_199
    assert len(vae.state_dict()) == 248


@pytest.mark.parametrize("variant", ["sd1", "sd1-inpaint", "sd2", "sdxl", "sdxl-refiner"])
def test_tiny_unet_keeps_every_full_size_key(variant):
    family = {"sd1-inpaint": "sd1"}.get(variant, variant)
    tiny = build_meta_unet(tiny_unet_config(variant)).state_dict()
    full = build_meta_unet(full_size_unet_config(family, variant.endswith("inpaint"))).state_dict()
    assert set(tiny) == set(full)
    assert all(tiny[key].ndim == tensor.ndim for key, tensor in full.items())


def test_ldm_key_names_are_the_checkpoint_names():
    keys = set(build_meta_unet(full_size_unet_config("sd1")).state_dict())
    # Spot checks straight from the LDM grammar (model-formats §1.2).
    for key in (
        "time_embed.0.weight",
        "input_blocks.4.0.skip_connection.weight",
        "input_blocks.3.0.op.weight",
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "middle_block.1.proj_in.weight",
        "output_blocks.2.1.conv.weight",
        "output_blocks.5.2.conv.weight",
        "out.2.weight",
    ):
        assert key in keys
    assert "input_blocks.1.0.skip_connection.weight" not in keys
    sdxl = set(build_meta_unet(full_size_unet_config("sdxl")).state_dict())
    assert {"label_emb.0.0.weight", "label_emb.0.2.weight", "output_blocks.2.2.conv.weight"} <= sdxl


@pytest.mark.parametrize(("family", "inpaint"), [(f, i) for f, i, _, _ in FULL_SIZE])
def test_full_size_key_set_is_exactly_what_diffusers_converts_from_ldm(family, inpaint):
    """diffusers' own LDM→diffusers map consumes every one of our keys and fills its whole model."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = full_size_unet_config(family, inpaint)
    ours = {"model.diffusion_model." + k: v for k, v in build_meta_unet(config).state_dict().items()}
    reference_config = diffusers_unet_config(config)
    converted = convert_ldm_unet_checkpoint(ours, reference_config)
    assert len(converted) == len(ours)
    with torch.device("meta"):
        reference = UNet2DConditionModel(**reference_config)
    reference.load_state_dict(converted, strict=True, assign=True)


def test_full_size_vae_key_set_is_what_diffusers_converts_from_ldm():
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ours = {
        "first_stage_model." + k: v for k, v in build_meta_vae(full_size_vae_config()).state_dict().items()
    }
    config = {
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "layers_per_block": 2,
        "latent_channels": 4,
    }
    converted = convert_ldm_vae_checkpoint(ours, config)
    with torch.device("meta"):
        reference = AutoencoderKL(**config)
    reference.load_state_dict(converted, strict=True, assign=True)
