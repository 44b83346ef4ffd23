"""ComfyUI's `comfy_execution.graph_utils` for node packs.

`ExecutionBlocker` is the engine's own class, so a pack returning it blocks downstream nodes.
`GraphBuilder` is not provided: Latentgraph does not run node expansion ("expand" results), and
ComfyUI's GraphBuilder keeps its id prefix in class-level mutable state.
"""

from __future__ import annotations

from engine.blocker import ExecutionBlocker

__all__ = ["ExecutionBlocker"]
