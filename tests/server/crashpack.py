"""Nodes that take their process down, for the worker-process tests: a segfault through ctypes,
`os._exit` as a misbehaving pack might call it, and `sys.exit`. `make_crash_runtime` is the
factory the worker process calls (through a RuntimeRecipe) to build its runtime."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any

from tests.server.harness import make_runtime
from tests.server.nodepack import make_registry


class Crash:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"how": (["segfault", "os_exit", "sys_exit"],),
                             "value": ("INT", {"default": 0})}}

    def run(self, how: str, value: int) -> tuple[int]:
        if how == "segfault":
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        if how == "os_exit":
            os._exit(3)
        sys.exit(4)


class WorkerPid:
    """Output node showing the process it ran in (which worker, before and after a crash)."""

    CATEGORY = "test"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"value": ("INT", {"default": 0})}}

    def run(self, value: int) -> dict[str, Any]:
        return {"ui": {"pid": [os.getpid()], "value": [value]}}


def make_crash_registry():
    registry = make_registry()
    registry.register_mappings({"TestCrash": Crash, "TestWorkerPid": WorkerPid}, {},
                               "tests.server.crashpack")
    return registry


def make_crash_runtime(base: Path) -> Any:
    return make_runtime(base, make_crash_registry())
