"""Our UNet and VAE against diffusers on the same tiny checkpoint files (fp32, max |Δ| ≤ 1e-4)."""

from __future__ import annotations

import pytest
import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.files import read_state_dict
from tests.models.diffusers_reference import diffusers_unet, diffusers_vae

TOLERANCE = 1e-4
VARIANTS = ["sd1", "sd1-inpaint", "sd2", "sd2-v", "sdxl", "sdxl-refiner"]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("variant", VARIANTS)
def test_unet_output_matches_diffusers(variant, tiny_checkpoint, cpu_manager):
    path = tiny_checkpoint(variant, text=False)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False)
    model, cfg = loaded.model, loaded.info.unet
    state_dict, _ = read_state_dict(path)
    reference = diffusers_unet(state_dict, cfg)

    generator = torch.Generator().manual_seed(1)
    batch = 2
    x = torch.randn(batch, 4, 8, 8, generator=generator)
    t = torch.tensor([999.0, 321.5])
    context = torch.randn(batch, 77, cfg.context_dim, generator=generator)
    concat = None
    x_ref = x
    if model.inpaint:
        mask = (torch.rand(batch, 1, 8, 8, generator=generator) > 0.5).float()
        masked = torch.randn(batch, 4, 8, 8, generator=generator)
        concat = torch.cat([mask, masked], dim=1)
        x_ref = torch.cat([x, concat], dim=1)

    y = None
    added = None
    if cfg.adm_in_channels is not None:
        pooled_width = cfg.adm_in_channels - (6 if loaded.info.family == "sdxl" else 5) * 256
        pooled = torch.randn(batch, pooled_width, generator=generator)
        cond = {"pooled_output": pooled, "width": 1024, "height": 768, "crop_w": 16, "crop_h": 32}
        if loaded.info.family == "sdxl":
            cond.update(target_width=1024, target_height=1024)
            time_ids = torch.tensor([[768, 1024, 32, 16, 1024, 1024]] * batch, dtype=torch.float32)
        else:
            cond["aesthetic_score"] = 2.5
            time_ids = torch.tensor([[768, 1024, 32, 16, 2.5]] * batch, dtype=torch.float32)
        y = model.encode_adm(cond, batch, 512, 512)
        added = {"text_embeds": pooled, "time_ids": time_ids}

    ours = model.apply_model(x, t, context, y=y, concat=concat)
    with torch.no_grad():
        theirs = reference(x_ref, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
    assert ours.shape == (batch, 4, 8, 8)
    assert ours.abs().max() > 1e-3, "degenerate output would make the comparison meaningless"
    assert _max_diff(ours, theirs) <= TOLERANCE


def test_unet_handles_odd_latent_sizes_like_diffusers(tiny_checkpoint, cpu_manager):
    path = tiny_checkpoint("sd1", text=False)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False)
    state_dict, _ = read_state_dict(path)
    reference = diffusers_unet(state_dict, loaded.info.unet)
    x = torch.randn(1, 4, 9, 13, generator=torch.Generator().manual_seed(3))
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([500.0])
    ours = loaded.model.apply_model(x, t, context)
    with torch.no_grad():
        theirs = reference(x, t, encoder_hidden_states=context).sample
    assert _max_diff(ours, theirs) <= TOLERANCE


@pytest.mark.parametrize("variant", ["sd1", "sdxl"])
def test_vae_encode_and_decode_match_diffusers(variant, tiny_checkpoint, cpu_manager):
    path = tiny_checkpoint(variant, text=False)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False)
    vae = loaded.vae
    state_dict, _ = read_state_dict(path)
    reference = diffusers_vae(state_dict, loaded.info.vae, loaded.model.latent_format.scale_factor)

    generator = torch.Generator().manual_seed(2)
    pixels = torch.rand(2, 32, 40, 3, generator=generator)
    latent = vae.encode(pixels)  # raw VAE latents (ComfyUI's LATENT convention): no scaling factor
    with torch.no_grad():
        ref_latent = reference.encode(pixels.movedim(-1, 1) * 2 - 1).latent_dist.mean
    assert latent.shape == (2, 4, 4, 5)
    assert _max_diff(latent, ref_latent) <= TOLERANCE

    z = torch.randn(2, 4, 4, 5, generator=generator)
    with torch.no_grad():
        raw_ours = vae.model.decode(z)
        raw_theirs = reference.decode(z).sample
    assert _max_diff(raw_ours, raw_theirs) <= TOLERANCE
    image = vae.decode(z)
    expected = ((raw_theirs + 1) / 2).clamp(0, 1).movedim(1, -1)
    assert image.shape == (2, 32, 40, 3)
    assert _max_diff(image, expected) <= TOLERANCE


def test_controlnet_residuals_are_added_like_diffusers(tiny_checkpoint, cpu_manager):
    """control["output"] (input-block order) and control["middle"] match diffusers' additional residuals."""
    path = tiny_checkpoint("sd1", text=False)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False)
    state_dict, _ = read_state_dict(path)
    reference = diffusers_unet(state_dict, loaded.info.unet)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, 32, generator=generator)
    t = torch.tensor([250.0])
    # One residual per input block (the skips), shaped like them: widths 32·mult at 8/4/2/1 cells.
    shapes = [(32, 8)] * 3 + [(32, 4), (64, 4), (64, 4), (64, 2), (128, 2), (128, 2)] + [(128, 1)] * 3
    residuals = [torch.randn(1, c, s, s, generator=generator) for c, s in shapes]
    middle = torch.randn(1, 128, 1, 1, generator=generator)
    control = {"output": residuals, "middle": [middle]}
    ours = loaded.model.apply_model(x, t, context, control=control)
    assert len(control["output"]) == 12, "the caller's lists are not consumed"
    with torch.no_grad():
        theirs = reference(
            x,
            t,
            encoder_hidden_states=context,
            down_block_additional_residuals=tuple(residuals),
            mid_block_additional_residual=middle,
        ).sample
    plain = loaded.model.apply_model(x, t, context)
    assert _max_diff(ours, plain) > 1e-2
    assert _max_diff(ours, theirs) <= TOLERANCE


def test_diffusers_layout_vae_file_loads_and_matches(tiny_checkpoint, cpu_manager, tmp_path):
    """A VAE saved by diffusers (diffusion_pytorch_model.safetensors layout) decodes like the LDM file."""
    from safetensors.torch import save_file

    from diffusion.checkpoint import load_vae_file

    path = tiny_checkpoint("sd1", text=False)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False)
    state_dict, _ = read_state_dict(path)
    reference = diffusers_vae(state_dict, loaded.info.vae, 0.18215)
    diffusers_file = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(diffusers_file))
    vae = load_vae_file(diffusers_file, cpu_manager)
    z = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(6))
    assert _max_diff(vae.decode(z), loaded.vae.decode(z)) == 0.0
    pixels = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(7))
    assert _max_diff(vae.encode(pixels), loaded.vae.encode(pixels)) == 0.0


@pytest.mark.parametrize("variant", ["sd1", "sdxl", "sdxl-refiner"])
def test_diffusers_layout_unet_file_loads_to_the_same_network(
    variant, tiny_checkpoint, cpu_manager, tmp_path
):
    """diffusers' converter takes LDM → diffusers; our renamer must bring every tensor back."""
    from safetensors.torch import save_file

    from diffusion.checkpoint import load_unet_file
    from diffusion.checkpoint.diffusers_unet import diffusers_unet_to_ldm

    path = tiny_checkpoint(variant, text=False)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False)
    state_dict, metadata = read_state_dict(path)
    diffusers_sd = diffusers_unet(state_dict, loaded.info.unet).state_dict()
    ours = {
        k.removeprefix("model.diffusion_model."): v for k, v in state_dict.items() if k.startswith("model.")
    }
    back = diffusers_unet_to_ldm(diffusers_sd)
    assert set(back) == set(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    file = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in diffusers_sd.items()}, str(file), metadata=metadata)
    model = load_unet_file(file, cpu_manager)
    assert model.family == loaded.info.family and model.unet_config == loaded.info.unet
