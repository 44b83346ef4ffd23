"""Fixtures for the LoRA tests: tiny checkpoints (written once per session) and single-threaded torch."""

from tests.models.conftest import _single_thread, cpu_manager, tiny_checkpoint  # noqa: F401
