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


# progress_state lists every node, as ComfyUI does, up to this many; beyond, only the unfinished
# ones, so that each event stays small on huge graphs
_PROGRESS_STATE_FULL_LIMIT = 256


class PromptEvents:
    """What one prompt tells its listener, in ComfyUI's payload shapes. With no listener (or a
    NullListener) nothing is built or sent; history messages are still kept in `messages`."""

    def __init__(self, prompt_id: str, listener: ExecutionListener | None, messages: list[list[Any]]) -> None:
        self.prompt_id = prompt_id
        self.quiet = listener is None or isinstance(listener, NullListener)
        self.listener: ExecutionListener = NullListener() if self.quiet else FanOutListener(listener)
        self.messages = messages
        self._progress: dict[str, dict[str, Any]] = {}
        self._active: dict[str, dict[str, Any]] = {}

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if not self.quiet:
            self.listener.on_event(event, data)

    def message(self, event: str, data: dict[str, Any]) -> None:
        """An event that also goes into the history's status messages."""
        self.messages.append([event, data])
        self.emit(event, data)

    def progress_state(self, node_id: str, state: str, value: float = 0, total: float = 1) -> None:
        if self.quiet:
            return
        # Entries are replaced, never mutated, so a shallow copy is a safe snapshot.
        entry = {"value": value, "max": total, "state": state, "node_id": node_id,
                 "prompt_id": self.prompt_id, "display_node_id": node_id,
                 "parent_node_id": None, "real_node_id": node_id}
        self._progress[node_id] = entry
        if state == "finished":
            self._active.pop(node_id, None)
        else:
            self._active[node_id] = entry
        nodes = dict(self._progress if len(self._progress) <= _PROGRESS_STATE_FULL_LIMIT else self._active)
        nodes[node_id] = entry
        self.emit("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    def progress(self, node_id: str, value: int, total: int, preview: tuple[str, bytes] | None) -> None:
        """A running node's progress (engine.runtime.report_progress), with its preview image."""
        self.emit("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id})
        self.progress_state(node_id, "running", value, total)
        if preview is not None:
            self.listener.on_preview(self.prompt_id, node_id, *preview)

    def executing(self, node_id: str) -> None:
        self.emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
        self.progress_state(node_id, "running", 0, 1)

    def node_report(self, node_id: str, state: str, reason: str) -> None:
        self.emit("lg.node_report", {"prompt_id": self.prompt_id, "node": node_id, "state": state,
                                     "reason": reason})

    def finished(self, node_id: str, ui: dict[str, Any] | None) -> None:
        """A node is done; its ui output (if any) goes to the client."""
        if ui:
            self.emit("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                   "prompt_id": self.prompt_id})
        self.progress_state(node_id, "finished", 1, 1)
