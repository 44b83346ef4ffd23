"""ComfyUI's `comfy_api.latest`: `io` (ComfyNode, Schema, typed inputs/outputs, NodeOutput),
`ui` (results shown in the editor) and `ComfyExtension` (what `comfy_entrypoint` returns).

A V3 node class is also a valid V1 class (see io.ComfyNode), so the registry and executor treat
both alike; `comfy_entrypoint` packs are read by `entrypoint_mappings`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import io, ui

__all__ = ["ComfyExtension", "entrypoint_mappings", "io", "ui"]


class ComfyExtension:
    """What a V3 pack's `comfy_entrypoint()` returns: its node classes."""

    async def on_load(self) -> None:
        """Called once before get_node_list."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        raise NotImplementedError


def _await(value: Any) -> Any:
    return asyncio.run(value) if asyncio.iscoroutine(value) else value


def entrypoint_mappings(entrypoint: Any) -> tuple[dict[str, type], dict[str, str]]:
    """(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS) of a pack's `comfy_entrypoint`."""
    extension = _await(entrypoint())
    _await(extension.on_load())
    classes: dict[str, type] = {}
    display: dict[str, str] = {}
    for node_class in _await(extension.get_node_list()):
        schema = node_class.define_schema()
        classes[schema.node_id] = node_class
        if schema.display_name:
            display[schema.node_id] = schema.display_name
    return classes, display
