"""Adapters inside the patch contract: functions, offsets and strength_model as weight_patches applies them."""

import torch

from diffusion.lora.loader import load_lora
from diffusion.weight_patches import calculate_weight


def _lora():
    g = torch.Generator().manual_seed(0)
    up, down = torch.randn(6, 2, generator=g), torch.randn(2, 4, generator=g)
    patches, _ = load_lora({"m.lora_up.weight": up, "m.lora_down.weight": down, "m.alpha": torch.tensor(1.0)}, {"m": "w"})
    return patches["w"], 0.5 * up @ down  # alpha 1 / rank 2


def test_function_post_processes_the_scaled_change():
    adapter, delta = _lora()
    weight = torch.randn(6, 4)
    out = calculate_weight([(0.8, adapter, 1.0, None, lambda d: d * d)], weight.clone(), "w")
    torch.testing.assert_close(out, weight + (0.8 * delta) ** 2)


def test_offset_patches_a_slice_and_strength_model_scales_the_base():
    adapter, delta = _lora()
    weight = torch.randn(10, 4)
    out = calculate_weight([(1.0, adapter, 0.5, (0, 2, 6), None)], weight.clone(), "w")
    expected = weight.clone()
    expected[2:8] = 0.5 * weight[2:8] + delta
    torch.testing.assert_close(out, expected)
    adapter_t, delta_t = _lora()
    out = calculate_weight([(1.0, adapter_t, 1.0, (1, 3, 4), None)], torch.zeros(6, 10), "w")  # a non-contiguous slice
    torch.testing.assert_close(out[:, 3:7], delta_t)


def test_stacked_entries_apply_in_order():
    adapter, delta = _lora()
    weight = torch.randn(6, 4)
    out = calculate_weight([(1.0, adapter, 1.0, None, None), (-0.5, adapter, 1.0, None, None)], weight.clone(), "w")
    torch.testing.assert_close(out, weight + 0.5 * delta)
