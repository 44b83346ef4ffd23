"""ControlNet behaviour in sampling: strength 0, σ windows, stacking, diff files, batching, errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import load_checkpoint
from diffusion.controlnet import ControlFamilyError, ControlNetError, load_controlnet
from diffusion.controlnet.control import broadcast_hint
from diffusion.controlnet.tiny import tiny_controlnet_ldm, tiny_controlnet_state_dict
from diffusion.sampling.pipeline import common_ksampler, model_sampling_for


@pytest.fixture()
def sd1(tiny_checkpoint, cpu_manager):
    return load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False).model


def _conds(control=None, negative_control=None):
    generator = torch.Generator().manual_seed(5)
    positive = [[torch.randn(1, 77, 32, generator=generator), {} if control is None else {"control": control}]]
    negative = [[torch.randn(1, 77, 32, generator=generator),
                 {} if negative_control is None else {"control": negative_control}]]
    return positive, negative


def _sample(model, positive, negative, steps=3):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return common_ksampler(model, 11, steps, 5.0, "euler", "normal", positive, negative, latent)["samples"]


def _counting(control):
    calls = []
    control.network.register_forward_hook(lambda module, args, out: calls.append(float(args[2][0])))
    return calls


def test_strength_zero_is_bitwise_no_control(sd1, tiny_controlnet, cpu_manager):
    control = load_controlnet(tiny_controlnet("sd1"), cpu_manager)
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    calls = _counting(control)
    zero = control.copy().set_cond_hint(hint, 0.0)
    plain = _sample(sd1, *_conds())
    assert torch.equal(_sample(sd1, *_conds(zero, zero)), plain)
    assert calls == []
    full = control.copy().set_cond_hint(hint, 1.0)
    assert not torch.allclose(_sample(sd1, *_conds(full, full)), plain)


def test_the_start_end_window_runs_the_controlnet_only_inside_it(sd1, tiny_controlnet, cpu_manager):
    control = load_controlnet(tiny_controlnet("sd1"), cpu_manager)
    calls = _counting(control)
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    windowed = control.copy().set_cond_hint(hint, 1.0, (0.3, 0.7))
    steps = 6
    _sample(sd1, *_conds(windowed, windowed), steps=steps)
    ms = model_sampling_for(sd1)
    # ComfyUI: percent p ↦ σ at timestep (1 − p)·999; the control runs while σ_end ≤ σ ≤ σ_start.
    high, low = float(ms.sigma(torch.tensor(0.7 * 999.0))), float(ms.sigma(torch.tensor(0.3 * 999.0)))
    from diffusion.sampling.pipeline import ksampler_sigmas

    sigmas = ksampler_sigmas(ms, "normal", "euler", steps, 1.0)[:-1]
    inside = [float(ms.timestep(s)) for s in sigmas if low <= float(s) <= high]
    assert 0 < len(inside) < steps
    assert calls == inside  # one batched call (cond + uncond) per step inside the window


def test_stacked_controls_add_their_residuals(tiny_controlnet, cpu_manager):
    first = load_controlnet(tiny_controlnet("sd1"), cpu_manager)
    second = load_controlnet(tiny_controlnet("sd1", "diffusers"), cpu_manager)
    generator = torch.Generator().manual_seed(2)
    hint_a, hint_b = torch.rand(2, 1, 3, 64, 64, generator=generator)
    x, context, t = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 77, 32, generator=generator), torch.tensor([400.0])
    a = first.copy().set_cond_hint(hint_a, 0.5)
    b = second.copy().set_cond_hint(hint_b, 0.8).set_previous_controlnet(a)
    both = b.get_control(x, t, context)
    alone_a = first.copy().set_cond_hint(hint_a, 0.5).get_control(x, t, context)
    alone_b = second.copy().set_cond_hint(hint_b, 0.8).get_control(x, t, context)
    for key in ("output", "middle"):
        for r, ra, rb in zip(both[key], alone_a[key], alone_b[key]):
            assert torch.allclose(r, ra + rb, atol=1e-6)


def test_a_diff_controlnet_is_the_base_unet_plus_the_difference(sd1, tiny_controlnet, cpu_manager):
    full = load_controlnet(tiny_controlnet("sd1", "ldm"), cpu_manager)
    with pytest.raises(ControlNetError, match="DiffControlNetLoader"):
        load_controlnet(tiny_controlnet("sd1", "diff"), cpu_manager)
    diff = load_controlnet(tiny_controlnet("sd1", "diff"), cpu_manager, model=sd1)
    for (name, a), (_, b) in zip(full.network.state_dict().items(), diff.network.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_a_controlnet_for_another_family_is_refused_naming_both(tiny_controlnet, tiny_checkpoint, cpu_manager):
    sdxl = load_controlnet(tiny_controlnet("sdxl"), cpu_manager)
    model = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False).model
    applied = sdxl.copy().set_cond_hint(torch.rand(1, 3, 64, 64))
    with pytest.raises(ControlFamilyError, match="sdxl.*sd1"):
        _sample(model, *_conds(applied))


def test_cond_and_uncond_rows_share_one_call_with_the_hint_batch_repeated():
    hints = torch.arange(2.0).reshape(2, 1, 1, 1)
    assert broadcast_hint(hints, 4, 2).flatten().tolist() == [0, 1, 0, 1]
    assert broadcast_hint(hints, 6, 2).flatten().tolist() == [0, 1, 0, 0, 1, 0]
    assert broadcast_hint(hints[:1], 6, 3).shape[0] == 1


@pytest.mark.parametrize("marker, message", [
    ({"control_add_embedding.linear_1.weight": torch.zeros(1)}, "Union"),
    ({"controlnet_blocks.0.weight": torch.zeros(1)}, "SD3 / Flux"),
    ({"something.else": torch.zeros(1)}, "not a ControlNet"),
])
def test_unsupported_files_are_clear_errors(tmp_path, cpu_manager, marker, message):
    path = tmp_path / "odd.safetensors"
    save_file({**tiny_controlnet_state_dict("sd1", "diffusers"), **marker} if "Union" in message
              else marker, str(path))
    with pytest.raises(ControlNetError, match=message):
        load_controlnet(path, cpu_manager)


def test_a_control_lora_is_the_sampled_unet_plus_its_low_rank_deltas(tiny_checkpoint, cpu_manager):
    """The network equals a full ControlNet holding W_unet + up·down (and the file's full tensors)."""
    from diffusion.checkpoint.files import read_state_dict
    from diffusion.controlnet import load_controlnet_state_dict
    from diffusion.controlnet.control_lora import ControlLora

    checkpoint = tiny_checkpoint("sdxl", text=False)
    model = load_checkpoint(checkpoint, cpu_manager, load_clip=False, load_vae=False).model
    lora_sd = tiny_controlnet_state_dict("sdxl", "control-lora", seed=4)
    base = read_state_dict(checkpoint)[0]
    expected = {}
    for key, tensor in lora_sd.items():
        if key.endswith(".up"):
            stem = key[:-3]
            weight = base["model.diffusion_model." + stem + ".weight"]
            delta = tensor.flatten(1) @ lora_sd[stem + ".down"].flatten(1)
            expected["control_model." + stem + ".weight"] = weight + delta.reshape(weight.shape)
        elif key.endswith((".weight", ".bias")):
            expected["control_model." + key] = tensor
    for key, tensor in base.items():  # what the file leaves to the UNet
        name = "control_model." + key[len("model.diffusion_model."):]
        if key.startswith("model.diffusion_model.") and name not in expected:
            expected[name] = tensor
    arch = {"unet": {"num_head_channels": 8}}
    wanted = {"control_model." + key for key in tiny_controlnet_ldm("sdxl")}
    reference = load_controlnet_state_dict({k: v for k, v in expected.items() if k in wanted}, cpu_manager, arch=arch)
    control_lora = load_controlnet_state_dict(lora_sd, cpu_manager)
    assert isinstance(control_lora, ControlLora)

    generator = torch.Generator().manual_seed(6)
    x, context = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 77, 96, generator=generator)
    y = model.encode_adm({"pooled_output": torch.randn(2, 64, generator=generator)}, 2)
    hint, t = torch.rand(1, 3, 64, 64, generator=generator), torch.tensor([700.0, 700.0])
    applied = control_lora.copy().set_cond_hint(hint, 0.9)
    applied.pre_run(model, model_sampling_for(model).percent_to_sigma)
    ours = applied.get_control(x, t, context, y=y)
    theirs = reference.copy().set_cond_hint(hint, 0.9).get_control(x, t, context, y=y)
    for a, b in zip(ours["output"] + ours["middle"], theirs["output"] + theirs["middle"]):
        assert torch.allclose(a, b, atol=1e-5)
    again = control_lora.copy().set_cond_hint(hint, 0.5)
    again.pre_run(model, model_sampling_for(model).percent_to_sigma)
    assert again.network is applied.network  # assembled once per model, shared by copies


def test_an_area_limited_entry_runs_its_control_on_the_area_with_the_hint_fitted_to_it(sd1, tiny_controlnet,
                                                                                       cpu_manager):
    control = load_controlnet(tiny_controlnet("sd1"), cpu_manager)
    seen = []
    control.network.register_forward_hook(lambda module, args, out: seen.append((args[0].shape, args[1].shape)))
    applied = control.copy().set_cond_hint(torch.rand(1, 3, 64, 64), 1.0)
    positive, negative = _conds()
    positive = [[positive[0][0], {"control": applied, "area": (4, 6, 2, 1)}]]  # (h, w, y, x) in latent pixels
    _sample(sd1, positive, negative, steps=1)
    assert seen == [(torch.Size([1, 4, 4, 6]), torch.Size([1, 3, 32, 48]))]


def test_a_shuffle_controlnet_pools_its_residuals(tmp_path, cpu_manager):
    from diffusion.controlnet.tiny import write_tiny_controlnet

    path = write_tiny_controlnet(tmp_path / "cn_shuffle.safetensors", "sd1")
    control = load_controlnet(path, cpu_manager)
    assert control.global_average_pooling
    generator = torch.Generator().manual_seed(9)
    x, context = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 77, 32, generator=generator)
    residuals = control.copy().set_cond_hint(torch.rand(1, 3, 64, 64)).get_control(x, torch.tensor([300.0]), context)
    for residual in residuals["output"]:
        assert torch.allclose(residual, residual.mean(dim=(2, 3), keepdim=True).expand_as(residual))


def test_copies_share_one_network_in_the_cache_accounting(tiny_controlnet, cpu_manager):
    from engine.sizing import value_nbytes

    control = load_controlnet(tiny_controlnet("sd1"), cpu_manager)
    one = value_nbytes(control)
    both = value_nbytes([control, control.copy().set_cond_hint(torch.zeros(1, 3, 8, 8))])
    assert one > 1_000_000 and both < one + 10_000


def test_the_old_apply_node_steers_the_negative_too_and_the_advanced_one_does_not(sd1, tiny_controlnet, cpu_manager):
    from diffusion.controlnet.apply import apply_control

    control = load_controlnet(tiny_controlnet("sd1"), cpu_manager)
    batches = []
    control.network.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    image = torch.rand(1, 64, 64, 3)
    positive, negative = _conds()
    (old,) = apply_control([positive], control, image, 1.0, apply_to_uncond=True)
    _sample(sd1, old, negative, steps=1)
    assert batches == [2]  # cond and uncond rows in one ControlNet call
    batches.clear()
    advanced, _ = apply_control([positive, []], control, image, 1.0)
    _sample(sd1, advanced, negative, steps=1)
    assert batches == [1]  # ControlNetApplyAdvanced: only where it was attached
    assert negative[0][1] == {}  # the caller's conditioning is never modified
