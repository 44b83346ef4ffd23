"""--compile: the compiled UNet (inductor on the CPU here) computes what eager does, follows weight
patches without recompiling, and skips CUDA graph capture where there is no CUDA."""

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


def _small_sd1_handle(manager, dtype=torch.float32):
    """A two-level SD1-style UNet (one ResBlock and transformer per level): every kind of block,
    a fraction of the tiny checkpoint's graph, so inductor compiles it in a bearable time here."""
    from dataclasses import replace

    from bench.unet import random_weights
    from diffusion.checkpoint.loader import build_meta_unet
    from diffusion.checkpoint.tiny import tiny_unet_config
    from diffusion.latent_formats import SD15
    from diffusion.patcher import ModelHandle, SamplingConfig

    config = replace(tiny_unet_config("sd1"), channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                     transformer_depth_output=(1, 1, 1, 1))
    unet = random_weights(build_meta_unet(config), seed=7, dtype=dtype)
    return ModelHandle(unet, manager, "sd1", SD15, SamplingConfig())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_compiled_unet_matches_eager_and_follows_in_place_patches(monkeypatch, tmp_path):
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "inductor"))
    torch._dynamo.reset()
    model = _small_sd1_handle(ModelManager("cpu", compile_unet=True))
    unet = model.diffusion_model
    x, t, context = _inputs()
    with torch.no_grad():
        eager = unet(x, t, context)
    out = model.apply_model(x, t, context)
    assert isinstance(model.shared_network.compiled, compiled.CompiledUNet)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]

    # A patch swaps the parameter's tensor (diffusion.weight_patches): the compiled code reads
    # parameters as inputs, so it sees the patched and then the restored weights, never recompiling.
    patched = model.clone()
    key = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    weight = dict(unet.named_parameters())[key.removeprefix("diffusion_model.")]
    delta = torch.randn(weight.shape, generator=torch.Generator().manual_seed(5))
    assert patched.add_patches({key: (delta,)}, 0.5) == [key]
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graph replay needs a CUDA device")
@pytest.mark.timeout(1200)
def test_cuda_graph_replay_follows_weight_patches_and_restores(monkeypatch, tmp_path):
    """On a GPU the compiled step is a replayed CUDA graph that recorded parameter addresses:
    a patch swapping parameter tensors must still show in the output, and so must restoring."""
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "inductor"))
    torch._dynamo.reset()
    model = _small_sd1_handle(ModelManager("cuda", compile_unet=True), torch.float16)
    unet = model.prepare()
    x, t, context = (v.cuda() for v in _inputs())
    calls = [model.apply_model(x, t, context) for _ in range(3)]  # compile, record, replay
    assert model.shared_network.compiled._compiled.keys() == {True}  # the CUDA graph path ran
    with torch.no_grad():
        eager = unet(x.half(), t, context.half()).float()
    for out in calls:
        torch.testing.assert_close(out, eager, rtol=2e-2, atol=2e-2)

    patched = model.clone()
    key = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    weight = dict(unet.named_parameters())[key.removeprefix("diffusion_model.")]
    delta = torch.randn(weight.shape, generator=torch.Generator().manual_seed(5))
    assert patched.add_patches({key: (delta,)}, 0.5) == [key]
    out_patched = [patched.apply_model(x, t, context) for _ in range(2)]
    with torch.no_grad():
        eager_patched = unet(x.half(), t, context.half()).float()
    assert not torch.allclose(eager_patched, eager, atol=1e-2)
    for out in out_patched:
        torch.testing.assert_close(out, eager_patched, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(model.apply_model(x, t, context), eager, rtol=2e-2, atol=2e-2)
