"""T2I-Adapters against diffusers' ``T2IAdapter`` (fp32, ≤ 1e-4), their injection slots, and sampling."""

from __future__ import annotations

import re

import pytest
import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.controlnet import load_controlnet_state_dict
from diffusion.controlnet.t2i import T2IAdapter
from diffusion.controlnet.tiny import tiny_t2i_config, tiny_t2i_state_dict
from diffusion.sampling.pipeline import common_ksampler

TOLERANCE = 1e-4


def _to_diffusers(tensors: dict[str, torch.Tensor], light: bool) -> dict[str, torch.Tensor]:
    """Original adapter names as diffusers spells them (the reverse of ComfyUI's prefix table)."""
    out = {}
    for key, tensor in tensors.items():
        if light:
            key = re.sub(r"^body\.(\d+)\.body\.(\d+)\.", r"body.\1.resnets.\2.", key)
        elif m := re.match(r"^body\.(\d+)\.in_conv\.(.+)$", key):
            key = f"body.{int(m.group(1)) // 2}.in_conv.{m.group(2)}"
        elif m := re.match(r"^body\.(\d+)\.(.+)$", key):
            key = f"body.{int(m.group(1)) // 2}.resnets.{int(m.group(1)) % 2}.{m.group(2)}"
        out["adapter." + key] = tensor
    return out


def _diffusers_adapter(variant: str, layout: str, state_dict: dict[str, torch.Tensor]):
    from diffusers import T2IAdapter as DiffusersAdapter

    config = tiny_t2i_config(variant, layout)
    channels = list(config.channels[:3] if config.light else config.channels)
    kind = "light_adapter" if config.light else ("full_adapter_xl" if config.xl else "full_adapter")
    model = DiffusersAdapter(config.hint_channels, channels, config.blocks_per_level, config.unshuffle, kind)
    if layout != "t2i-diffusers":
        state_dict = _to_diffusers(state_dict, config.light)
    model.load_state_dict(state_dict, strict=True)
    return model.eval().float()


@pytest.mark.parametrize("variant, layout", [("sd1", "t2i"), ("sd1", "t2i-light"), ("sd1", "t2i-depth"),
                                             ("sd1", "t2i-diffusers"), ("sdxl", "t2i"), ("sdxl", "t2i-diffusers")])
def test_adapter_features_match_diffusers(variant, layout, cpu_manager):
    state_dict = tiny_t2i_state_dict(variant, layout, seed=3)
    adapter = load_controlnet_state_dict(state_dict, cpu_manager)
    assert isinstance(adapter, T2IAdapter) and adapter.family == variant
    reference = _diffusers_adapter(variant, layout, state_dict)
    channels = tiny_t2i_config(variant, layout).hint_channels
    hint = torch.rand(2, channels, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        theirs = reference(hint)
        ours = adapter.network.features(hint)
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("variant, slots", [("sd1", [2, 5, 8, 11]), ("sdxl", [3, 5, 8])])
def test_features_land_after_the_encoder_blocks_comfyui_uses(variant, slots, cpu_manager):
    adapter = load_controlnet_state_dict(tiny_t2i_state_dict(variant, "t2i"), cpu_manager)
    applied = adapter.copy().set_cond_hint(torch.rand(1, 3, 64, 64), 0.5)
    x = torch.zeros(1, 4, 8, 8)
    control = applied.get_control(x, torch.tensor([10.0]), torch.zeros(1, 77, 32))
    features = adapter.network.features(torch.nn.functional.interpolate(
        applied.cond_hint_original, size=(64, 64), mode="nearest-exact"))
    popped = control["input"][::-1]  # the UNet pops one entry per input block, from the end
    assert [i for i, f in enumerate(popped) if f is not None] == slots
    for index, feature in zip(slots, features):
        assert torch.allclose(popped[index], feature * 0.5)
    assert ("middle" in control) == (variant == "sdxl")


def test_a_depth_adapter_steers_sampling_and_is_computed_once_per_run(tiny_checkpoint, cpu_manager):
    model = load_checkpoint(tiny_checkpoint("sd1", text=False), cpu_manager, load_clip=False, load_vae=False).model
    adapter = load_controlnet_state_dict(tiny_t2i_state_dict("sd1", "t2i-depth"), cpu_manager)
    runs = []
    adapter.network.register_forward_hook(lambda *a: runs.append(1))
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}

    def sample(positive_options):
        return common_ksampler(model, 3, 3, 4.0, "euler", "normal", [[context, positive_options]],
                               [[-context, positive_options]], latent)["samples"]

    applied = adapter.copy().set_cond_hint(torch.rand(1, 3, 40, 40), 1.0)
    plain = sample({})
    steered = sample({"control": applied})
    assert runs == [1] and not torch.allclose(plain, steered)
