"""The listener interface through which the server and the CLI follow a running prompt.

Event names and payloads are exactly ComfyUI's websocket messages, so the server can forward
them unchanged: execution_start, execution_cached, executing, progress, progress_state,
executed, execution_success, execution_error, execution_interrupted. Extra engine detail travels
in events prefixed `lg.`:

- `lg.plan` {"prompt_id", "pending": [node ids scheduled to run, sources first], "cached": [node ids]} once
  scheduling is done (nodes behind lazy inputs may join later);
- `lg.node_report` {"prompt_id", "node", "state": "ran"|"cached", "reason"} once per node
  that ran or was served from the cache;
- `lg.run_report` {"prompt_id", "nodes": {node_id: {"state", "reason"}}} before the final event.

The executor does not send ComfyUI's closing `executing {"node": null}`: the caller sends it
after it has stored the history entry, as ComfyUI's worker does.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class ExecutionListener(Protocol):
    def on_event(self, event: str, data: dict[str, Any]) -> None: ...

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None: ...


class NullListener:
    """Ignores everything; the executor skips building payloads for it."""

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        pass

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None:
        pass


class RecordingListener:
    """Keeps every event and preview in memory (tests, history, debugging)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.previews: list[tuple[str, str, str, bytes]] = []

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None:
        self.previews.append((prompt_id, node_id, image_format, image))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == event]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


class FanOutListener:
    """Forwards to several listeners; one failing listener does not starve the others."""

    def __init__(self, *listeners: ExecutionListener) -> None:
        self.listeners = [listener for listener in listeners if listener is not None]

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener.on_event(event, data)
            except Exception:  # a broken client must not stop the prompt
                log.exception("listener failed on %s", event)

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None:
        for listener in self.listeners:
            try:
                listener.on_preview(prompt_id, node_id, image_format, image)
            except Exception:
                log.exception("listener failed on a preview")
