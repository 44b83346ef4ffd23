"""Attention numerics: SDPA matches the textbook formula; SD2's fp16 upcast runs the product in fp32."""

from __future__ import annotations

import torch

from diffusion.models.attention import attention


def _reference(q, k, v, heads):
    b, _, inner = q.shape
    d = inner // heads
    q, k, v = (t.float().view(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(b, -1, inner)


def test_attention_matches_the_formula_for_self_and_cross_attention():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 16, 32, generator=g)
    k = torch.randn(2, 7, 32, generator=g)
    v = torch.randn(2, 7, 32, generator=g)
    assert torch.allclose(attention(q, k, v, heads=4), _reference(q, k, v, 4), atol=1e-5)


def test_upcast_keeps_fp16_logits_from_overflowing():
    g = torch.Generator().manual_seed(1)
    # Logits around 1e5 overflow fp16 (max 65504) unless the product runs in fp32.
    q = (torch.randn(1, 8, 16, generator=g) * 60).half()
    k = (torch.randn(1, 8, 16, generator=g) * 60).half()
    v = torch.randn(1, 8, 16, generator=g).half()
    upcast = attention(q, k, v, heads=1, upcast=True)
    assert upcast.dtype == torch.float16
    assert torch.isfinite(upcast).all()
    assert torch.allclose(upcast.float(), _reference(q, k, v, 1), atol=2e-2)
