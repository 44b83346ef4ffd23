"""How a node failure is worded and recorded: ComfyUI's `execution_error` payloads, with advice
the user can act on when memory ran out (the server, the CLI and any other front door word it
the same way)."""

from __future__ import annotations

import time
import traceback
from typing import Any, Iterable, Mapping

OUT_OF_MEMORY_ADVICE = (
    "Out of memory. Try a smaller image size or batch size, start with --lowvram (or a smaller "
    "--vram-budget), decode with VAE Decode (Tiled), or free memory (unload models) and run again.")


def timestamp() -> int:
    """Milliseconds since the epoch, as ComfyUI stamps its events."""
    return int(time.time() * 1000)


def is_out_of_memory(exc: BaseException) -> bool:
    """Allocator failures on any device: torch.OutOfMemoryError (matched by name, so torch-free
    graphs never import torch), MemoryError, or a RuntimeError saying so (the CPU allocator's "can't allocate memory")."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or (isinstance(exc, RuntimeError) and (
        "not enough memory" in text or "can't allocate memory" in text))


def failure_message(exc: BaseException) -> str:
    """A node failure's `exception_message`; out of memory leads with what the user can try."""
    text = str(exc)
    if not is_out_of_memory(exc):
        return text
    return f"{OUT_OF_MEMORY_ADVICE} (Details: {text})" if text.strip() else OUT_OF_MEMORY_ADVICE


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _shown(value: Any) -> Any:
    """An input value as the error record shows it: JSON scalars as they are, anything else as text."""
    return value if value is None or isinstance(value, (int, float, bool, str)) else str(value)


def node_failure(prompt_id: str, node_id: str, node_type: str | None, exc: BaseException,
                 executed: Iterable[str], inputs: Mapping[str, list[Any]],
                 current_outputs: Iterable[str]) -> dict[str, Any]:
    """The `execution_error` record of a node that raised `exc` while called with `inputs`."""
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed),
            "exception_message": failure_message(exc), "exception_type": _type_name(exc),
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": {name: [_shown(v) for v in values] for name, values in inputs.items()},
            "current_outputs": list(current_outputs), "timestamp": timestamp()}


def blocked(prompt_id: str, node_id: str, node_type: str, executed: Iterable[str],
            message: str) -> dict[str, Any]:
    """The `execution_error` event of a node that an ExecutionBlocker with a message stopped
    (the prompt itself goes on)."""
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed),
            "exception_message": message, "exception_type": "ExecutionBlocked", "traceback": [],
            "current_inputs": {}, "current_outputs": []}


def interrupted(prompt_id: str, node_id: str, node_type: str, executed: Iterable[str]) -> dict[str, Any]:
    """The `execution_interrupted` event, naming the node that was about to run or running."""
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": list(executed),
            "timestamp": timestamp()}


def validation_failure(prompt_id: str, error: Mapping[str, Any],
                       node_errors: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `execution_error` event of a prompt that failed validation, on its first failing node."""
    failing = next(iter(node_errors), None)
    lines = [error.get("message", "Prompt failed validation")]
    if error.get("details"):
        lines.append(str(error["details"]))
    return {"prompt_id": prompt_id, "node_id": failing,
            "node_type": node_errors[failing]["class_type"] if failing else None,
            "executed": [], "exception_message": "\n".join(lines), "exception_type": "ValidationError",
            "traceback": [], "current_inputs": {}, "current_outputs": [], "timestamp": timestamp()}
