"""Style models for StyleModelApply: the T2I-Adapter style adapter (``style_embedding`` files).

The adapter reads a CLIP vision ``last_hidden_state`` (ViT-L/14: 257 tokens of 1024), appends its
learned style tokens, runs a few CLIP residual attention blocks (quick_gelu), and projects the
style tokens to the text-context width; StyleModelApply appends them to the prompt's tokens.
Released files: width 1024, 8 heads, 3 layers, 8 tokens, context 768 (SD1). Heads are not in the
shapes; ``latentgraph.arch`` ``{"style_model": {"heads": n}}`` overrides the released 8.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion.checkpoint.errors import CheckpointError
from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
from diffusion.memory import ModelManager

RELEASED_HEADS = 8
_LAYER = re.compile(r"^transformer_layes\.(\d+)\.")


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """CLIP's pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); tokens first ([L, N, D])."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, 4 * width), gelu=QuickGELU(), c_proj=nn.Linear(4 * width, width))
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.ln_1(x)
        x = x + self.attn(n, n, n, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class StyleAdapter(nn.Module):
    """T2I-Adapter's style adapter, parameter names as in the released ``t2iadapter_style`` files."""

    def __init__(self, width: int, context_dim: int, heads: int, layers: int, tokens: int) -> None:
        super().__init__()
        self.transformer_layes = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.style_embedding = nn.Parameter(torch.zeros(1, tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, context_dim))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """CLIP vision hidden states ``[N, T, width]`` → style tokens ``[N, tokens, context_dim]``."""
        tokens = self.style_embedding.shape[1]
        x = torch.cat([hidden, self.style_embedding.expand(hidden.shape[0], -1, -1)], dim=1)
        x = self.transformer_layes(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, -tokens:]) @ self.proj


class StyleModel:
    """The STYLE_MODEL value."""

    def __init__(self, adapter: StyleAdapter, manager: ModelManager, name: str = "") -> None:
        self.adapter = adapter
        self.manager = manager
        self.name = name
        manager.register(adapter, f"{name} (style model)" if name else "style model")

    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self.adapter)

    def get_cond(self, clip_vision_output: Any) -> torch.Tensor:
        """Style tokens ``[N, tokens, context]`` (ComfyUI's name) from a CLIP_VISION_OUTPUT."""
        self.manager.load(self.adapter)
        dtype = self.adapter.proj.dtype
        hidden = clip_vision_output.last_hidden_state.to(self.manager.device, dtype)
        if hidden.shape[-1] != self.adapter.style_embedding.shape[-1]:
            raise CheckpointError(
                f"the style model takes CLIP vision features of width {self.adapter.style_embedding.shape[-1]}, "
                f"got {hidden.shape[-1]} (T2I style adapters need CLIP ViT-L/14)"
            )
        with torch.no_grad():
            return self.adapter(hidden).float().cpu()


def load_style_model(path: str | Path, manager: ModelManager) -> StyleModel:
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    if "style_embedding" not in state_dict:
        hint = " (Flux Redux models are not supported)" if "redux_down.weight" in state_dict else ""
        raise CheckpointError(f"{path.name} is not a T2I-Adapter style model{hint}")
    _, tokens, width = state_dict["style_embedding"].shape
    layers = 1 + max((int(m.group(1)) for key in state_dict if (m := _LAYER.match(key))), default=-1)
    arch = parse_arch_metadata(metadata).get("style_model") or {}
    adapter = StyleAdapter(width, int(state_dict["proj"].shape[1]), int(arch.get("heads", RELEASED_HEADS)), layers,
                           tokens)
    missing, unexpected = adapter.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path.name}: style model keys do not match: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    adapter.eval().requires_grad_(False).to(manager.text_encoder_dtype())
    return StyleModel(adapter, manager, path.name)


def apply_style(conditioning: list[list[Any]], style_tokens: torch.Tensor, strength: float,
                strength_type: str) -> list[list[Any]]:
    """StyleModelApply: every entry's tokens with the style tokens appended (one row for the batch).

    ``multiply`` scales the tokens by ``strength``. ``attn_bias`` biases attention to them by
    log(strength) in ComfyUI, which needs attention masks our sampler does not have: strength 1.0
    (no bias) works, other values are refused rather than silently ignored.
    """
    if strength_type not in ("multiply", "attn_bias"):
        raise ValueError(f"strength_type must be multiply or attn_bias, not {strength_type!r}")
    tokens = style_tokens.flatten(0, 1)[None]
    if strength_type == "multiply":
        tokens = tokens * strength
    elif strength != 1.0:
        raise ValueError("strength_type attn_bias with a strength other than 1.0 needs attention masks, "
                         "which the sampler does not support yet; use multiply")
    if any("attention_mask" in options for _, options in conditioning):
        raise ValueError("conditioning with an attention_mask is not supported")
    return [[torch.cat([context, tokens.to(context.dtype).expand(context.shape[0], -1, -1)], dim=1), dict(options)]
            for context, options in conditioning]
