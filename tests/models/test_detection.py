"""Family, inpainting and prediction-type detection on every tiny variant; overrides win."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError, load_checkpoint
from diffusion.checkpoint.detect import SD2_V_HEURISTIC_KEY, detect_prediction
from diffusion.checkpoint.files import read_state_dict
from diffusion.checkpoint.tiny import tiny_checkpoint_state_dict
from diffusion.latent_formats import SD15, SDXL

EXPECTED = {
    "sd1": ("sd1", False, "eps", SD15),
    "sd1-inpaint": ("sd1", True, "eps", SD15),
    "sd2": ("sd2", False, "eps", SD15),
    "sd2-v": ("sd2", False, "v_prediction", SD15),
    "sdxl": ("sdxl", False, "eps", SDXL),
    "sdxl-refiner": ("sdxl-refiner", False, "eps", SDXL),
}


@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_every_tiny_variant_is_detected(variant, tiny_checkpoint, cpu_manager):
    family, inpaint, prediction, latent_format = EXPECTED[variant]
    loaded = load_checkpoint(tiny_checkpoint(variant), cpu_manager)
    assert loaded.clip is not None, "the text encoders in the file are handed to diffusion.text"
    assert loaded.info.family == family
    assert loaded.info.inpaint is inpaint
    assert loaded.info.prediction == prediction
    assert loaded.model.family == family
    assert loaded.model.inpaint is inpaint
    assert loaded.model.sampling_config.prediction == prediction
    assert loaded.model.latent_format is latent_format
    assert loaded.vae is not None and loaded.vae.latent_channels == latent_format.channels


def test_v_pred_marker_without_metadata_means_v_prediction(tmp_path, cpu_manager):
    state, _ = tiny_checkpoint_state_dict("sd2-v", include_text=False)
    path = tmp_path / "no-meta.safetensors"
    save_file(state, str(path), metadata={"latentgraph.arch": json.dumps({"unet": {"num_head_channels": 8}})})
    loaded = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False)
    assert loaded.info.prediction == "v_prediction"
    assert loaded.info.prediction_source == "v_pred key"


def test_prediction_override_wins(tiny_checkpoint, cpu_manager):
    loaded = load_checkpoint(
        tiny_checkpoint("sd2-v", text=False),
        cpu_manager,
        load_clip=False,
        load_vae=False,
        overrides={"prediction": "eps"},
    )
    assert loaded.model.sampling_config.prediction == "eps"
    with pytest.raises(CheckpointError, match="prediction"):
        load_checkpoint(
            tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, overrides={"prediction": "x0"}
        )


def test_sd2_heuristic_reads_the_norm_bias_spread(tiny_checkpoint):
    state, _ = read_state_dict(tiny_checkpoint("sd2", text=False))
    unet = {k.removeprefix("model.diffusion_model."): v for k, v in state.items() if k.startswith("model.")}
    unet[SD2_V_HEURISTIC_KEY] = torch.full_like(unet[SD2_V_HEURISTIC_KEY], 0.0)
    assert detect_prediction("sd2", unet, state, {}, inpaint=False) == ("eps", "sd2 norm1.bias heuristic")
    unet[SD2_V_HEURISTIC_KEY] = torch.linspace(-1, 1, unet[SD2_V_HEURISTIC_KEY].numel())
    assert detect_prediction("sd2", unet, state, {}, inpaint=False)[0] == "v_prediction"
    # Inpainting SD2 models are eps whatever the spread (ComfyUI's rule).
    assert detect_prediction("sd2", unet, state, {}, inpaint=True)[0] == "eps"


def test_heads_come_from_metadata_not_family_default(tiny_checkpoint, cpu_manager):
    loaded = load_checkpoint(
        tiny_checkpoint("sdxl", text=False), cpu_manager, load_clip=False, load_vae=False
    )
    assert loaded.info.unet.num_head_channels == 8
    assert loaded.info.unet.context_dim == 96
    assert loaded.info.unet.adm_in_channels == 64 + 6 * 256


def test_file_without_unet_is_refused_clearly(tmp_path, cpu_manager):
    path = tmp_path / "vae-only.safetensors"
    save_file({"first_stage_model.encoder.conv_in.weight": torch.zeros(32, 3, 3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="no UNet"):
        load_checkpoint(path, cpu_manager)


def test_text_encoder_of_another_family_is_refused(tmp_path, cpu_manager):
    state, metadata = tiny_checkpoint_state_dict("sd1", include_text=False)
    state["cond_stage_model.model.positional_embedding"] = torch.zeros(77, 32)
    path = tmp_path / "mixed.safetensors"
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="text encoder looks like sd2"):
        load_checkpoint(path, cpu_manager, load_clip=False)


def test_ztsnr_marker_sets_zero_terminal_snr(tmp_path, cpu_manager):
    state, metadata = tiny_checkpoint_state_dict("sd1", include_text=False)
    state["ztsnr"] = torch.zeros(0)
    path = tmp_path / "ztsnr.safetensors"
    save_file(state, str(path), metadata=metadata)
    model = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False).model
    assert model.sampling_config.zero_terminal_snr is True


def test_edm_checkpoints_are_refused_clearly(tmp_path, cpu_manager):
    state, metadata = tiny_checkpoint_state_dict("sdxl", include_text=False)
    state["edm_mean"] = torch.zeros(1, 4, 1, 1)
    state["edm_std"] = torch.ones(1, 4, 1, 1)
    metadata = {"latentgraph.arch": json.dumps({"unet": {"num_head_channels": 8}})}
    path = tmp_path / "edm.safetensors"
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="EDM"):
        load_checkpoint(path, cpu_manager, load_clip=False)


def test_checkpoint_without_text_encoders_gives_clip_none(tiny_checkpoint, cpu_manager):
    loaded = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager)
    assert loaded.clip is None
    assert loaded.model is not None and loaded.vae is not None


@pytest.mark.parametrize("middle", [-2, -1, 0, 3])
def test_distilled_sdxl_layouts_load_from_their_shapes(tmp_path, cpu_manager, middle):
    """SSD-1B/Vega-style files: uneven depths per block and a reduced (or no) middle block."""
    from dataclasses import replace

    from diffusion.checkpoint.arch import UNET_PREFIX
    from diffusion.checkpoint.tiny import tiny_unet_config
    from diffusion.models.unet import UNetModel

    config = replace(
        tiny_unet_config("sdxl"),
        transformer_depth=(0, 0, 1, 2, 1, 3),
        transformer_depth_output=(3, 1, 2, 2, 1, 1, 0, 0, 0),
        transformer_depth_middle=middle,
    )
    torch.manual_seed(0)
    original = UNetModel(config).eval()
    path = tmp_path / "distilled.safetensors"
    arch = json.dumps({"unet": {"num_head_channels": 8}})
    save_file(
        {UNET_PREFIX + k: v for k, v in original.state_dict().items()}, str(path), {"latentgraph.arch": arch}
    )
    loaded = load_checkpoint(path, cpu_manager, load_clip=False)
    assert loaded.info.family == "sdxl"
    assert loaded.info.unet == config
    x, t, context, y = (
        torch.randn(1, 4, 8, 8),
        torch.tensor([300.0]),
        torch.randn(1, 77, 96),
        torch.randn(1, 1600),
    )
    with torch.no_grad():
        expected = original(x, t, context, y)
    assert torch.allclose(loaded.model.apply_model(x, t, context, y=y), expected, atol=1e-5)
