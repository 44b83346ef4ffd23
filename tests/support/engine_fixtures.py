"""Shared helpers for engine and CLI tests: a runtime with the test node pack, prompt builders."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from app.bootstrap import Runtime, create_runtime
from app.settings import Settings
from engine.events import RecordingListener
from engine.executor import ExecutionOutcome

import tests.support.testing_nodes as testing_nodes
from tests.support.testing_nodes import basic

_ids = itertools.count()


def make_runtime(base: Path, **settings: Any) -> Runtime:
    if os.environ.get("LG_TEST_CACHE_NONE") and "cache_ram_gb" not in settings:
        settings.setdefault("cache_none", True)  # run the suite in --cache-none mode
    if not settings.get("cache_none"):
        settings.setdefault("cache_ram_gb", 1.0)
    return create_runtime(Settings(base_directory=base, **settings), extra_node_packages=(testing_nodes,))


def calls() -> list[tuple[str, object]]:
    return basic.CALLS


def run(runtime: Runtime, prompt: dict[str, Any], **kwargs: Any) -> tuple[ExecutionOutcome, RecordingListener]:
    listener = RecordingListener()
    outcome = runtime.executor.execute(prompt, f"prompt-{next(_ids)}", listener, **kwargs)
    return outcome, listener


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}
