"""ComfyUI's `comfy_execution.graph` for node packs: `ExecutionBlocker` (ours, engine.blocker)."""

from engine.blocker import ExecutionBlocker

__all__ = ["ExecutionBlocker"]
