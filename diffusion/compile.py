"""Opt-in compiled UNet (``--compile``): torch.compile with static shapes, and CUDA graph replay.

At batch 1 the eager UNet is launch-bound on a fast GPU (hundreds of small kernels per step, each
costing host time), so the win comes from fewer, fused kernels (inductor) and from replaying a
whole step as one CUDA graph. Both need static shapes: each (resolution, batch) compiles once, and
inductor's FX-graph and autotuning caches live on disk (:func:`cache_directory`), so a later
process starts from them instead of recompiling.

Weights are inputs of the compiled code, never baked in (inductor's ``freezing`` stays off), so a
LoRA-patched or restored network needs no recompilation: diffusion.weight_patches swaps a
parameter's tensor, the compiled code reads whatever tensor the parameter holds, and the CUDA
graph tree, which records parameter addresses, re-records once when they change (torch falls back
to plain compiled code after 128 such re-records of one graph). ControlNet residuals and
transformer-option patches (Python hooks inside the network) change the call's structure, so such
calls run eagerly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"  # inductor's own setting, honoured as is


def cache_directory() -> Path:
    """Where inductor keeps compiled graphs and autotuning results: ``TORCHINDUCTOR_CACHE_DIR``
    when the user sets it, else inductor's per-user folder under the temp directory."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir())


def configure_caches() -> Path:
    """Turn inductor's on-disk caches on; returns their folder (:func:`cache_directory`)."""
    import torch._inductor.config as inductor

    directory = cache_directory()
    directory.mkdir(parents=True, exist_ok=True)
    inductor.fx_graph_cache = True
    inductor.autotune_local_cache = True
    inductor.freezing = False  # weights stay inputs: in-place patches must reach compiled code
    return directory


def cuda_graphs_supported(device: torch.device) -> bool:
    """CUDA graph capture needs a CUDA device; elsewhere compiled code runs without it."""
    return device.type == "cuda" and torch.cuda.is_available()


class CompiledUNet:
    """Calls a UNet through torch.compile: CUDA graphs on CUDA, plain inductor code elsewhere.

    Same signature as ``UNetModel.forward``. One instance per network; each input shape compiles
    on first use (``dynamic=False``: static shapes, the premise of graph replay).
    """

    def __init__(self, unet: nn.Module, *, cuda_graphs: bool = True) -> None:
        self.unet = unet
        self.cuda_graphs = cuda_graphs
        self.cache = configure_caches()
        self._compiled: dict[bool, Any] = {}

    def _function(self, graphs: bool) -> Any:
        compiled = self._compiled.get(graphs)
        if compiled is None:
            mode = "reduce-overhead" if graphs else None
            compiled = self._compiled[graphs] = torch.compile(self.unet, mode=mode, dynamic=False)
        return compiled

    def __call__(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        y: torch.Tensor | None = None,
        control: dict[str, list[torch.Tensor | None]] | None = None,
        transformer_options: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        if control or _has_hooks(transformer_options):
            return self.unet(x, timesteps, context, y, control, transformer_options)
        graphs = self.cuda_graphs and cuda_graphs_supported(x.device)
        if not graphs:
            return self._function(False)(x, timesteps, context, y)
        # A replay overwrites the previous call's output buffers: start a new "step" for the graph
        # tree and hand the caller its own copy (a small latent-sized tensor).
        torch.compiler.cudagraph_mark_step_begin()
        return self._function(True)(x, timesteps, context, y).clone()


def _has_hooks(options: dict[str, Any] | None) -> bool:
    """Whether ComfyUI-style patches would run Python code inside the network. Without them the
    options only receive position keys the network writes for such patches, so the compiled
    network may run with a dict of its own."""
    return bool(options) and bool(options.get("patches") or options.get("patches_replace"))


def forward_for(shared: Any, unet: nn.Module, enabled: bool) -> Any:
    """The callable that runs ``unet``: the module itself, or (``enabled``) its compiled twin, made
    once and kept on ``shared`` (the handle state every clone of a model shares)."""
    if not enabled:
        return unet
    compiled = getattr(shared, "compiled", None)
    if compiled is None or compiled.unet is not unet:
        log.info("compiling the UNet on first use of each shape (cache: %s)", cache_directory())
        compiled = shared.compiled = CompiledUNet(unet)
    return compiled
