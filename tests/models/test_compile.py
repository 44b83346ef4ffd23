"""--compile: the compiled UNet (inductor on the CPU here) computes what eager does, sees weight
patches copied in place without recompiling, and skips CUDA graph capture where there is no CUDA."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from diffusion import compile as compiled
from diffusion.checkpoint import load_checkpoint
from diffusion.memory import ModelManager


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 8, 8, generator=g), torch.tensor([400.0, 400.0]), torch.randn(2, 77, 32, generator=g)


def test_forward_is_the_module_itself_unless_compiling(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint("sd1", text=False), ModelManager("cpu"), load_clip=False,
                            load_vae=False).model
    unet = model.diffusion_model
    assert compiled.forward_for(model.shared_network, unet, False) is unet
    first = compiled.forward_for(model.shared_network, unet, True)
    assert isinstance(first, compiled.CompiledUNet)
    assert compiled.forward_for(model.clone().shared_network, unet, True) is first  # clones share it
    assert not compiled.cuda_graphs_supported(torch.device("cpu"))


def test_compile_caches_go_to_the_chosen_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "inductor"))
    assert compiled.configure_caches() == tmp_path / "inductor"
    assert (tmp_path / "inductor").is_dir()
    monkeypatch.delenv(compiled.CACHE_ENV)
    default = compiled.cache_directory()
    assert default.parent == Path(tempfile.gettempdir()) and "torchinductor" in default.name


def test_manager_takes_the_compile_flag_from_the_settings():
    from app.settings import Settings

    assert ModelManager.from_settings(Settings(compile=True)).compile_unet
    assert not ModelManager.from_settings(Settings()).compile_unet


@pytest.mark.slow
def test_compiled_unet_matches_eager_and_follows_in_place_patches(tiny_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "inductor"))
    torch._dynamo.reset()
    model = load_checkpoint(tiny_checkpoint("sd1", text=False), ModelManager("cpu", compile_unet=True),
                            load_clip=False, load_vae=False).model
    unet = model.diffusion_model
    x, t, context = _inputs()
    with torch.no_grad():
        eager = unet(x, t, context)
    out = model.apply_model(x, t, context)
    assert isinstance(model.shared_network.compiled, compiled.CompiledUNet)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]

    # A LoRA-like patch is copied into the same parameter storage: the compiled code reads it
    # without recompiling, and restoring the original weights works the same way.
    patched = model.clone()
    key = "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    assert patched.add_patches({key: lambda w: 0.5 * torch.ones_like(w)}) == [key]
    out_patched = patched.apply_model(x, t, context)
    with torch.no_grad():
        eager_patched = unet(x, t, context)
    assert not torch.allclose(eager_patched, eager, atol=1e-3)
    torch.testing.assert_close(out_patched, eager_patched, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.apply_model(x, t, context), eager, rtol=1e-4, atol=1e-4)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_calls_with_python_hooks_inside_the_network_run_eagerly(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint("sd1", text=False), ModelManager("cpu"), load_clip=False,
                            load_vae=False).model
    unet = model.diffusion_model
    runner = compiled.CompiledUNet(unet)
    x, t, context = _inputs()
    seen = []

    def patch(h, options):
        seen.append(options["block"])
        return h

    options = {"patches": {"input_block_patch": [patch]}}
    with torch.no_grad():
        out = runner(x, t, context, None, None, options)
        reference = unet(x, t, context, None, None, {"patches": {"input_block_patch": [lambda h, o: h]}})
    torch.testing.assert_close(out, reference)
    assert seen and runner._compiled == {}  # nothing was compiled for it
