"""LatentApplyOperationCFG: the operation reshapes the guidance direction before CFG (tiny SD1 model)."""

from __future__ import annotations

import torch

from diffusion import latent_edit
from nodes.latent_edit import LatentApplyOperationCFG, LatentOperationTonemapReinhard
from tests.models.test_model_hooks import CFG, SIGMA, _denoiser, _latent, model  # noqa: F401 (fixture)


def test_operation_applies_to_cond_minus_uncond_before_cfg(model):  # noqa: F811
    operation, = LatentOperationTonemapReinhard().op(0.5)
    patched, = LatentApplyOperationCFG().patch(model, operation)
    x = _latent()
    out = _denoiser(patched)(x, SIGMA)
    reference = _denoiser(model)
    cond, uncond = reference.predict([reference.positive, reference.negative], x, SIGMA)
    guided = operation(latent=cond - uncond) + uncond  # by hand, then plain CFG
    assert torch.allclose(out, uncond + (guided - uncond) * CFG, atol=1e-5)
    assert "sampler_pre_cfg_function" not in model.model_options  # the input model is untouched


def test_hook_with_a_single_output_applies_to_it():
    hook = latent_edit.pre_cfg_hook(lambda latent: latent * 2)
    only = torch.ones(1, 4, 2, 2)
    assert torch.equal(hook({"conds_out": [only]})[0], only * 2)
