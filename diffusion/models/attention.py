"""Transformer blocks of the SD UNet: cross-attention, GEGLU feed-forward, SpatialTransformer.

Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-
efficient kernels where available), never a materialised score matrix.

The transformer blocks honour ComfyUI's attention hook points from ``transformer_options``
(``patches``: attn1/attn2 input and output patches, middle patch; ``patches_replace``: attn1 /
attn2 replacements by block), at the same places and with the same arguments as ComfyUI's
``BasicTransformerBlock``; see docs/MODEL_INTERFACE.md §2. Without hooks nothing extra runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, upcast: bool = False
) -> torch.Tensor:
    """Multi-head attention on ``[B, N, heads*d]`` tensors, returning ``[B, N, heads*d]``.

    ``upcast`` runs the product in fp32 when the inputs are fp16: SD2 was trained with fp32
    attention (``_ATTN_PRECISION = "fp32"`` in the Stability code) and its fp16 logits overflow.
    bf16 has fp32's exponent range and needs no upcast.
    """
    batch, _, inner = q.shape
    dim_head = inner // heads
    dtype = q.dtype
    if upcast and dtype == torch.float16:
        q, k, v = q.float(), k.float(), v.float()
    q, k, v = (t.view(batch, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(batch, -1, inner).to(dtype)


class CrossAttention(nn.Module):
    """Self-attention (``context=None``) or cross-attention onto the text context."""

    def __init__(
        self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None, upcast: bool = False
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.dim_head = dim_head
        self.upcast = upcast
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, value: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend from `x` to `context` (keys) and `value` (values; default: the context)."""
        context = x if context is None else context
        value = context if value is None else value
        out = attention(self.to_q(x), self.to_k(context), self.to_v(value), self.heads, self.upcast)
        return self.to_out(out)

    def replaced(self, x: torch.Tensor, context: torch.Tensor, value: torch.Tensor, replace, extra_options) -> torch.Tensor:
        """ComfyUI's attention replacement: `replace` gets projected q, k, v and returns the heads' output."""
        out = replace(self.to_q(x), self.to_k(context), self.to_v(value), extra_options)
        return self.to_out(out)


class GEGLU(nn.Module):
    """Linear projection to twice the width, half of it gating the other half through GELU."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU MLP with 4× expansion (keys ``net.0.proj`` and ``net.2``)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention and feed-forward, each with a residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int, upcast: bool = False) -> None:
        super().__init__()
        self.n_heads = heads
        self.d_head = dim_head
        self.attn_precision = torch.float32 if upcast else None
        self.attn1 = CrossAttention(dim, heads, dim_head, upcast=upcast)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, heads, dim_head, context_dim=context_dim, upcast=upcast)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, transformer_options: dict[str, Any] | None = None
    ) -> torch.Tensor:
        patches = replace = None
        if transformer_options:
            patches = transformer_options.get("patches")
            replace = transformer_options.get("patches_replace")
        if patches or replace:
            return self._forward_hooked(x, context, transformer_options, patches or {}, replace or {})
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x

    def _forward_hooked(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        options: dict[str, Any],
        patches: dict[str, list],
        replace: dict[str, dict],
    ) -> torch.Tensor:
        """The same block with ComfyUI's hook points, in ComfyUI's order."""
        extra = {k: v for k, v in options.items() if k not in ("patches", "patches_replace")}
        extra.update(n_heads=self.n_heads, dim_head=self.d_head, attn_precision=self.attn_precision)
        block = options.get("block")
        # A replacement is looked up by (block kind, block id, transformer block index), then by block.
        keys = (None if block is None else (block[0], block[1], options.get("block_index", 0)), block)
        x = self._hooked_attention(self.attn1, "attn1", self.norm1(x), None, patches, replace, extra, keys) + x
        for patch in patches.get("middle_patch", ()):
            x = patch(x, extra)
        x = self._hooked_attention(self.attn2, "attn2", self.norm2(x), context, patches, replace, extra, keys) + x
        return self.ff(self.norm3(x)) + x

    @staticmethod
    def _hooked_attention(
        attn: CrossAttention,
        name: str,
        n: torch.Tensor,
        context: torch.Tensor | None,
        patches: dict[str, list],
        replace: dict[str, dict],
        extra: dict[str, Any],
        keys: tuple,
    ) -> torch.Tensor:
        """One attention with its input patches, replacement and output patches (``context`` None: self)."""
        value = None
        if f"{name}_patch" in patches:
            context = n if context is None else context
            value = context
            for patch in patches[f"{name}_patch"]:
                n, context, value = patch(n, context, value, extra)
        replacements = replace.get(name, {})
        key = next((k for k in keys if k is not None and k in replacements), None)
        if key is not None:
            context = n if context is None else context
            value = context if value is None else value
            n = attn.replaced(n, context, value, replacements[key], extra)
        else:
            n = attn(n, context, value)
        for patch in patches.get(f"{name}_output_patch", ()):
            n = patch(n, extra)
        return n


class SpatialTransformer(nn.Module):
    """Image-to-token projection, ``depth`` transformer blocks, projection back, plus residual.

    SD1 projects with 1×1 convolutions, SD2/SDXL with Linear layers (``use_linear``); the two are
    the same map but store different weight ranks, so the checkpoint decides.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        depth: int,
        context_dim: int,
        use_linear: bool,
        upcast: bool = False,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        if use_linear:
            self.proj_in: nn.Module = nn.Linear(channels, inner)
            self.proj_out: nn.Module = nn.Linear(inner, channels)
        else:
            self.proj_in = nn.Conv2d(channels, inner, 1)
            self.proj_out = nn.Conv2d(inner, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, upcast) for _ in range(depth)
        )

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, transformer_options: dict[str, Any] | None = None
    ) -> torch.Tensor:
        batch, _, height, width = x.shape
        if transformer_options is not None:
            transformer_options["activations_shape"] = list(x.shape)
        h = self.norm(x)
        if not self.use_linear:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(batch, height * width, -1)
        if self.use_linear:
            h = self.proj_in(h)
        for index, block in enumerate(self.transformer_blocks):
            if transformer_options is not None:
                transformer_options["block_index"] = index
            h = block(h, context, transformer_options)
        if self.use_linear:
            h = self.proj_out(h)
        h = h.reshape(batch, height, width, -1).permute(0, 3, 1, 2)
        if not self.use_linear:
            h = self.proj_out(h.contiguous())
        return h + x
