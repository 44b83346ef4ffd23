"""Tiled VAE: seamless blending, agreement with whole-image decode, automatic use when memory is short."""

from __future__ import annotations

import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.latent_formats import SD15
from diffusion.memory import ModelManager
from diffusion.vae import tiled_apply


def test_blending_reproduces_a_pointwise_function_exactly():
    x = torch.randn(1, 4, 13, 21)

    def up(piece):  # a per-cell map that enlarges ×8, like a decoder without context
        return torch.repeat_interleave(torch.repeat_interleave(piece * 2.0 + 1.0, 8, dim=2), 8, dim=3)

    whole = up(x)
    tiled = tiled_apply(up, x, tile=6, overlap=2, in_per_cell=1, out_per_cell=8)
    assert torch.allclose(tiled, whole, atol=1e-6)
    down = tiled_apply(lambda p: p[:, :, ::8, ::8], whole, tile=5, overlap=2, in_per_cell=8, out_per_cell=1)
    assert torch.allclose(down, x * 2.0 + 1.0, atol=1e-6)


def test_tile_covering_the_image_equals_plain_decode(tiny_checkpoint, cpu_manager):
    vae = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False).vae
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(vae.decode_tiled(z, tile_size=64, overlap=0), vae.decode(z), atol=1e-6)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def test_tiled_decode_and_encode_stay_close_to_whole_image(tiny_checkpoint, cpu_manager):
    vae = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False).vae
    # A random VAE's mid-block attention mixes the whole image, which no tiling can reproduce;
    # trained VAEs are local. Switch it off (identity) so the comparison measures the tiling.
    with torch.no_grad():
        for half in (vae.model.encoder, vae.model.decoder):
            half.mid.attn_1.proj_out.weight.zero_()
            half.mid.attn_1.proj_out.bias.zero_()
    # Raw latents of the size a sampler hands over (unit variance in the model's scaled space).
    z = SD15.process_out(torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)))
    whole = vae.decode(z)
    tiled = vae.decode_tiled(z, tile_size=80, overlap=32)
    assert tiled.shape == whole.shape == (1, 128, 128, 3)
    assert _correlation(tiled, whole) > 0.9
    latent_whole = vae.encode(whole)
    latent_tiled = vae.encode_tiled(whole, tile_size=80, overlap=32)
    assert latent_tiled.shape == latent_whole.shape == (1, 4, 16, 16)
    assert _correlation(latent_tiled, latent_whole) > 0.8


def test_decode_switches_to_tiles_when_the_budget_is_short(tiny_checkpoint):
    roomy = ModelManager("cpu")
    vae = load_checkpoint(tiny_checkpoint("sd1", text=False), roomy, load_clip=False).vae
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    assert vae.plan_decode(z.shape).tile is None
    tight = ModelManager("cpu", vram_budget_bytes=vae.cache_size_bytes() + 10_000_000)
    short = load_checkpoint(tiny_checkpoint("sd1", text=False), tight, load_clip=False).vae
    short.manager.load(short.model)
    assert short.plan_decode(z.shape).tile is not None
    assert short.plan_encode((2, 128, 128, 3)).tile is not None
    image = short.decode(z)
    assert image.shape == (2, 128, 128, 3)
    assert torch.allclose(image, short.decode_tiled(z, 512, 64))


def test_wrong_latent_shapes_are_refused_clearly(tiny_checkpoint, cpu_manager):
    import pytest

    vae = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False).vae
    with pytest.raises(ValueError, match=r"latents \[B,4,h,w\]"):
        vae.decode(torch.zeros(1, 9, 4, 4))
    with pytest.raises(ValueError, match="IMAGE"):
        vae.encode(torch.zeros(1, 3, 16, 16, 2))


def test_out_of_memory_during_decode_falls_back_to_tiles(tiny_checkpoint, cpu_manager, monkeypatch):
    vae = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False).vae
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    expected = vae.decode_tiled(z, 512, 64)

    def exhausted(latent):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    monkeypatch.setattr(vae, "_decode", exhausted)
    assert torch.equal(vae.decode(z), expected)
