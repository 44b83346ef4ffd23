"""GLIGEN (Li et al. 2023): grounded boxes of text through gated self-attention in the UNet.

A GLIGEN file holds one "fuser" (gated self-attention) per transformer block of the UNet, in
``{input_blocks|middle_block|output_blocks}.N.M.transformer_blocks.K.fuser.*``, and a
``position_net`` that turns (box, pooled text) pairs into grounding tokens. GLIGENTextBoxApply
stores ComfyUI's ``("position", gligen, [(pooled, h, w, y, x), ...])`` under the conditioning key
``gligen`` (sizes in latent cells); at sampling time the guidance asks ``Gligen.set_position``
for a ``middle_patch`` (the hook between attn1 and attn2) for the model calls of that conditioning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion.checkpoint.errors import CheckpointError
from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
from diffusion.memory import ModelManager
from diffusion.models.attention import CrossAttention, FeedForward

MAX_OBJECTS = 30
FOURIER_FREQS = 8
_FUSER = re.compile(
    r"(?:^|\.)(input_blocks|middle_block|output_blocks)\.(?:(\d+)\.)?\d+\.transformer_blocks\.(\d+)\.fuser\.(.+)$"
)
_BLOCK_ORDER = {"input_blocks": 0, "middle_block": 1, "output_blocks": 2}

MiddlePatch = Callable[[torch.Tensor, dict[str, Any]], torch.Tensor]


class GatedSelfAttentionDense(nn.Module):
    """Visual tokens attend over themselves plus the grounding tokens; tanh gates start at 0."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.linear = nn.Linear(context_dim, query_dim)
        self.attn = CrossAttention(query_dim, heads, dim_head)
        self.ff = FeedForward(query_dim)
        self.norm1 = nn.LayerNorm(query_dim)
        self.norm2 = nn.LayerNorm(query_dim)
        self.alpha_attn = nn.Parameter(torch.tensor(0.0))
        self.alpha_dense = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, objs: torch.Tensor) -> torch.Tensor:
        visual = x.shape[1]
        tokens = self.norm1(torch.cat([x, self.linear(objs)], dim=1))
        x = x + torch.tanh(self.alpha_attn) * self.attn(tokens)[:, :visual]
        return x + torch.tanh(self.alpha_dense) * self.ff(self.norm2(x))


def fourier_embed(boxes: torch.Tensor, freqs: int = FOURIER_FREQS, temperature: float = 100.0) -> torch.Tensor:
    """``[B, N, 4]`` boxes → ``[B, N, freqs·2·4]``: per frequency, sin of the 4 coordinates then cos."""
    bands = temperature ** (torch.arange(freqs, dtype=torch.float32, device=boxes.device) / freqs)
    angles = bands.view(1, 1, freqs, 1) * boxes.unsqueeze(2)  # [B, N, freqs, 4]
    return torch.stack([angles.sin(), angles.cos()], dim=3).flatten(2)


class PositionNet(nn.Module):
    """(pooled text, box) → grounding token; empty slots use learned null features."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 512) -> None:
        super().__init__()
        position_dim = FOURIER_FREQS * 2 * 4
        self.linears = nn.Sequential(
            nn.Linear(in_dim + position_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, out_dim),
        )
        self.null_positive_feature = nn.Parameter(torch.zeros(in_dim))
        self.null_position_feature = nn.Parameter(torch.zeros(position_dim))

    def forward(self, boxes: torch.Tensor, masks: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        masks = masks.unsqueeze(-1)
        positions = fourier_embed(boxes)
        embeddings = embeddings * masks + (1 - masks) * self.null_positive_feature.view(1, 1, -1)
        positions = positions * masks + (1 - masks) * self.null_position_feature.view(1, 1, -1)
        return self.linears(torch.cat([embeddings, positions], dim=-1))


class GligenNetwork(nn.Module):
    """The fusers (indexed like the UNet's transformer_index) and the position net."""

    def __init__(self, fusers: Sequence[GatedSelfAttentionDense], position_net: PositionNet) -> None:
        super().__init__()
        self.fusers = nn.ModuleList(fusers)
        self.position_net = position_net


class Gligen:
    """The GLIGEN value: builds the per-call ``middle_patch`` of a grounded conditioning."""

    def __init__(self, network: GligenNetwork, manager: ModelManager, name: str = "") -> None:
        self.network = network
        self.manager = manager
        self.name = name
        self.key_dim = int(network.position_net.null_positive_feature.shape[0])
        manager.register(network, f"{name} (gligen)" if name else "gligen")

    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self.network)

    def set_position(self, latent_shape: Sequence[int], params: Sequence[tuple], device: torch.device) -> MiddlePatch:
        """ComfyUI's name: the patch for boxes ``(pooled, h, w, y, x)`` in latent cells on ``latent_shape``."""
        batch, _, height, width = latent_shape
        if len(params) > MAX_OBJECTS:
            raise ValueError(f"GLIGEN takes at most {MAX_OBJECTS} boxes, got {len(params)}")
        boxes = torch.zeros(MAX_OBJECTS, 4)
        masks = torch.zeros(MAX_OBJECTS)
        embeddings = torch.zeros(MAX_OBJECTS, self.key_dim)
        for i, (pooled, h, w, y, x) in enumerate(params):
            boxes[i] = torch.tensor([x / width, y / height, (x + w) / width, (y + h) / height])
            masks[i] = 1.0
            embeddings[i] = pooled.reshape(-1, self.key_dim)[0].float()
        self.manager.load(self.network)
        dtype = next(self.network.parameters()).dtype
        with torch.no_grad():
            objs = self.network.position_net(
                *(t.unsqueeze(0).expand(batch, *t.shape).to(device, dtype) for t in (boxes, masks, embeddings))
            )
        fusers = self.network.fusers

        def patch(x: torch.Tensor, extra_options: dict[str, Any]) -> torch.Tensor:
            fuser = fusers[extra_options["transformer_index"]]
            grounding = objs if objs.shape[0] == x.shape[0] else objs[:1].expand(x.shape[0], -1, -1)
            with torch.no_grad():
                return fuser(x, grounding.to(x.device, x.dtype))

        return patch


def append_box(conditioning: list[list[Any]], gligen: Gligen, pooled: torch.Tensor, width: int, height: int,
               x: int, y: int) -> list[list[Any]]:
    """GLIGENTextBoxApply: add a box (pixels; stored in latent cells, as ComfyUI) to every entry."""
    box = (pooled, height // 8, width // 8, y // 8, x // 8)
    out = []
    for context, options in conditioning:
        previous = options["gligen"][2] if "gligen" in options else []
        out.append([context, {**options, "gligen": ("position", gligen, [*previous, box])}])
    return out


def load_gligen(path: str | Path, manager: ModelManager) -> Gligen:
    """A GLIGEN file (any prefix before the UNet block names). Heads: 8 for SD1's 768-wide text,
    else 64-channel heads, as the released files; ``latentgraph.arch`` ``{"gligen": {"heads": n}}``."""
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    heads_override = (parse_arch_metadata(metadata).get("gligen") or {}).get("heads")
    fuser_weights: dict[tuple[int, int, int], dict[str, torch.Tensor]] = {}
    position_weights: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if (match := _FUSER.search(key)) is not None:
            kind, block, index, rest = match.groups()
            slot = (_BLOCK_ORDER[kind], int(block or 0), int(index))
            fuser_weights.setdefault(slot, {})[rest] = value
        elif "position_net." in key:
            position_weights[key.split("position_net.", 1)[1]] = value
    if not fuser_weights or "null_positive_feature" not in position_weights:
        raise CheckpointError(f"{path.name} is not a GLIGEN model (no fuser / position_net weights)")
    fusers = []
    for slot in sorted(fuser_weights):
        weights = fuser_weights[slot]
        query_dim, key_dim = weights["linear.weight"].shape
        heads = int(heads_override) if heads_override else (8 if key_dim == 768 else query_dim // 64)
        fuser = GatedSelfAttentionDense(query_dim, key_dim, heads, query_dim // heads)
        _load(fuser, weights, path.name)
        fusers.append(fuser)
    position_net = PositionNet(
        int(position_weights["null_positive_feature"].shape[0]),
        int(position_weights["linears.4.weight"].shape[0]),
        int(position_weights["linears.0.weight"].shape[0]),
    )
    _load(position_net, position_weights, path.name)
    network = GligenNetwork(fusers, position_net).eval().requires_grad_(False).to(manager.unet_dtype())
    return Gligen(network, manager, path.name)


def _load(module: nn.Module, weights: dict[str, torch.Tensor], name: str) -> None:
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{name}: GLIGEN weights do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
