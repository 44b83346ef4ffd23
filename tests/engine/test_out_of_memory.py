"""A node that runs out of memory fails with advice the user can act on, from the engine itself
(so the server, the CLI and any other front door word it the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engine.cache import OutputCache
from engine.executor import Executor, ExecutionOutcome
from engine.failures import OUT_OF_MEMORY_ADVICE
from engine.paths import FolderPaths
from engine.registry import NodeRegistry
from engine.runtime import Services

def real_cpu_allocation_failure() -> RuntimeError:
    """What torch's CPU allocator raises ("can't allocate memory"), not a message we wrote."""
    try:
        torch.empty(2**60, dtype=torch.uint8)
    except RuntimeError as exc:
        return exc
    raise AssertionError("a 1 EiB allocation succeeded")


FAILURES = {
    "torch_oom": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB"),
    "memory_error": lambda: MemoryError("simulated allocation failure"),
    "bare_memory_error": lambda: MemoryError(),
    "cpu_allocator": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                          "not enough memory: you tried to allocate 1 GB"),
    "cpu_cannot_allocate": real_cpu_allocation_failure,
    "value": lambda: ValueError("width must be a multiple of 8"),
}


class Explode:
    """Output node raising one of FAILURES."""

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"kind": (sorted(FAILURES),)}}

    def run(self, kind: str) -> tuple:
        raise FAILURES[kind]()


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def on_preview(self, *args: Any) -> None:
        pass


def execute(tmp_path: Path, kind: str) -> tuple[ExecutionOutcome, Listener]:
    registry = NodeRegistry()
    registry.register("Explode", Explode)
    executor = Executor(registry, OutputCache(), Services(paths=FolderPaths(tmp_path), settings={}))
    listener = Listener()
    outcome = executor.execute({"1": {"class_type": "Explode", "inputs": {"kind": kind}}}, "p", listener)
    return outcome, listener


@pytest.mark.parametrize("kind", ["torch_oom", "memory_error", "bare_memory_error", "cpu_allocator",
                                  "cpu_cannot_allocate"])
def test_out_of_memory_failures_carry_the_advice_and_the_details(tmp_path: Path, kind: str) -> None:
    outcome, listener = execute(tmp_path, kind)
    assert outcome.status == "error"
    [error] = [data for event, data in listener.events if event == "execution_error"]
    message = error["exception_message"]
    assert message.startswith(OUT_OF_MEMORY_ADVICE)
    for hint in ("smaller image size or batch size", "--lowvram", "Tiled", "free memory"):
        assert hint in OUT_OF_MEMORY_ADVICE
    details = str(FAILURES[kind]())
    assert (f"(Details: {details})" in message) if details else message == OUT_OF_MEMORY_ADVICE
    # the history copy and the outcome's error say the same, and the type stays the real one
    assert outcome.error is not None and outcome.error["exception_message"] == message
    assert outcome.messages[-1] == ["execution_error", error]
    expected_type = {"torch_oom": "torch.OutOfMemoryError"}.get(kind)
    if expected_type:
        assert error["exception_type"] == expected_type
    assert error["traceback"]  # the original traceback is kept for debugging


def test_other_failures_keep_their_own_message(tmp_path: Path) -> None:
    _, listener = execute(tmp_path, "value")
    [error] = [data for event, data in listener.events if event == "execution_error"]
    assert error["exception_message"] == "width must be a multiple of 8"
    assert error["exception_type"] == "ValueError"
