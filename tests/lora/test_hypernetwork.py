"""A1111 hypernetworks: the MLPs follow A1111's layer rules, and the UNet with the patch equals a UNet
whose key/value projections are fed through the MLPs by hand."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cli.run import main
from diffusion.checkpoint.loader import load_checkpoint
from diffusion.hypernetwork import (
    HypernetworkError,
    hypernetwork_from_state,
    load_hypernetwork,
    random_hypernetwork_state,
)
from diffusion.models.attention import CrossAttention
from nodes.lora import HypernetworkLoader
from tools.make_tiny_checkpoint import make_tiny_checkpoint

WORKFLOWS = Path(__file__).parent / "workflows"


def _a1111_mlp(layers: dict[str, torch.Tensor], x: torch.Tensor, activation) -> torch.Tensor:
    """A1111's structure written out for layer_structure (1, 2, 1), layer norm on, activate_output off:
    Linear → act → LayerNorm → Dropout(skipped) → Linear → LayerNorm (slots 0, 1, 2, 3, 4, 5)."""
    h = F.linear(x, layers["linear.0.weight"], layers["linear.0.bias"])
    h = activation(h)
    h = F.layer_norm(h, h.shape[-1:], layers["linear.2.weight"], layers["linear.2.bias"])
    h = F.linear(h, layers["linear.4.weight"], layers["linear.4.bias"])
    return F.layer_norm(h, h.shape[-1:], layers["linear.5.weight"], layers["linear.5.bias"])


def test_mlps_follow_a1111_layer_rules():
    state = random_hypernetwork_state([16, 24], activation="relu", layer_norm=True, seed=1)
    assert sorted(state[16][0]) == ["linear.0.bias", "linear.0.weight", "linear.2.bias", "linear.2.weight",
                                    "linear.4.bias", "linear.4.weight", "linear.5.bias", "linear.5.weight"]
    patch = hypernetwork_from_state(state, strength=0.7)
    q = torch.randn(2, 5, 16)
    k, v = torch.randn(2, 7, 24), torch.randn(2, 7, 24)
    q2, k2, v2 = patch(q, k, v, {})
    assert q2 is q
    torch.testing.assert_close(k2, k + 0.7 * _a1111_mlp(state[24][0], k, torch.relu))
    torch.testing.assert_close(v2, v + 0.7 * _a1111_mlp(state[24][1], v, torch.relu))
    untouched = torch.randn(1, 3, 40)  # a width the file has no layers for
    assert patch(q, untouched, untouched, {})[1] is untouched


def test_unknown_activation_and_empty_files_are_errors():
    state = random_hypernetwork_state([8])
    state["activation_func"] = "wavy"
    with pytest.raises(HypernetworkError, match="wavy"):
        hypernetwork_from_state(state, 1.0)
    with pytest.raises(HypernetworkError, match="no hypernetwork layers"):
        hypernetwork_from_state({"activation_func": "relu"}, 1.0)


def test_pickles_that_need_code_are_refused(tmp_path):
    import argparse

    torch.save({"x": argparse.Namespace()}, tmp_path / "evil.pt")
    with pytest.raises(HypernetworkError, match="unsafe"):
        load_hypernetwork(tmp_path / "evil.pt", 1.0)


class _Fed(torch.nn.Module):
    """``proj(x + strength·mlp(x))``: the hypernetwork applied by hand in front of a projection."""

    def __init__(self, proj, mlp, strength):
        super().__init__()
        self.proj, self.mlp, self.strength = proj, mlp, strength

    def forward(self, x):
        return self.proj(x + self.strength * self.mlp(x))


def test_unet_with_the_hypernetwork_equals_projections_fed_by_hand(tmp_path, cpu_manager):
    path = make_tiny_checkpoint("sd1", tmp_path / "tiny.safetensors")
    model = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False).model
    state = random_hypernetwork_state([32, 64, 128], activation="relu", layer_norm=True, seed=2)
    torch.save(state, tmp_path / "hn.pt")
    hypernetwork = load_hypernetwork(tmp_path / "hn.pt", 0.8)

    reference = copy.deepcopy(model.diffusion_model)
    for module in reference.modules():
        if isinstance(module, CrossAttention):
            mlp_k, mlp_v = hypernetwork.mlps[module.to_k.in_features]
            module.to_k = _Fed(module.to_k, mlp_k, 0.8)
            module.to_v = _Fed(module.to_v, mlp_v, 0.8)

    patched = model.clone()
    patched.set_model_attn1_patch(hypernetwork)
    patched.set_model_attn2_patch(hypernetwork)
    generator = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 8, 8, generator=generator), torch.tensor([5.0, 600.0])
    context = torch.randn(2, 77, 32, generator=generator)
    ours = patched.apply_model(x, t, context)
    with torch.no_grad():
        expected = reference(x, t, context)
    plain = model.apply_model(x, t, context)
    assert (ours - plain).abs().max() > 1e-3
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_node_clones_the_model(tmp_path, cpu_manager, monkeypatch):
    path = make_tiny_checkpoint("sd1", tmp_path / "tiny.safetensors")
    model = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False).model
    torch.save(random_hypernetwork_state([32, 64, 128]), tmp_path / "hn.pt")
    monkeypatch.setattr("nodes.lora._resolve", lambda folder, name: tmp_path / name)
    (patched,) = HypernetworkLoader().load_hypernetwork(model, "hn.pt", 1.0)
    assert patched is not model and patched.is_clone(model)
    assert "attn2_patch" not in model.model_options["transformer_options"].get("patches", {})
    assert len(patched.model_options["transformer_options"]["patches"]["attn2_patch"]) == 1


def test_hypernetwork_workflow_runs_from_the_cli(tmp_path):
    make_tiny_checkpoint("sd1", tmp_path / "models" / "checkpoints" / "tiny-sd1.safetensors")
    (tmp_path / "models" / "hypernetworks").mkdir(parents=True)
    torch.save(random_hypernetwork_state([32, 64, 128]), tmp_path / "models" / "hypernetworks" / "tiny-sd1-hypernetwork.pt")
    out, err = io.StringIO(), io.StringIO()
    code = main([str(WORKFLOWS / "hypernetwork.json"), "--base-directory", str(tmp_path), "--cpu", "--no-progress"],
                stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert out.getvalue().strip().endswith(".png")
