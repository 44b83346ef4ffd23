"""What code inside a running node may use: services, progress reporting and interrupt checks.

The executor sets a context variable around every node call, so these functions know which
prompt and node they belong to without any global "current prompt" state.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from engine.errors import InterruptedByUser

if TYPE_CHECKING:
    from engine.interrupt import InterruptFlag
    from engine.paths import FolderPaths


@dataclass
class Services:
    """Start-up objects that nodes need: folder paths, the model manager, relevant flags."""

    paths: "FolderPaths"
    model_manager: Any = None  # a diffusion.memory.ModelManager
    settings: dict[str, Any] = field(default_factory=dict)  # preview_method, disable_metadata, ...
    registry: Any = None  # the runtime's engine.registry.NodeRegistry (ComfyUI's nodes.NODE_CLASS_MAPPINGS)
    # Per-runtime objects of the ComfyUI adapters in compat/ (e.g. the PromptServer instance).
    compat: dict[str, Any] = field(default_factory=dict)


class NodeContext:
    """Identity and reporting hooks of the node currently being called."""

    __slots__ = ("prompt_id", "node_id", "services", "interrupt", "on_progress")

    def __init__(self, prompt_id: str, node_id: str, services: Services,
                 interrupt: "InterruptFlag | None" = None,
                 on_progress: Callable[[int, int, "tuple[str, bytes] | None"], None] | None = None) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.services = services
        self.interrupt = interrupt
        self.on_progress = on_progress

    def __repr__(self) -> str:
        return f"NodeContext(prompt_id={self.prompt_id!r}, node_id={self.node_id!r})"


# The executor sets _node around each node call (node_context).
_node: ContextVar[NodeContext | None] = ContextVar("latentgraph_node_context", default=None)
_scoped: ContextVar[Services | None] = ContextVar("latentgraph_services", default=None)


class _DefaultServicesHolder:
    """The start-up default (set once by app.bootstrap); read when no node or scope is active."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Services | None = None


_default = _DefaultServicesHolder()


def set_default_services(value: Services | None) -> None:
    """Called by app.bootstrap.create_runtime so INPUT_TYPES can list model files."""
    _default.value = value


def services() -> Services:
    """The services of the running node, else the active scope, else the start-up default."""
    context = _node.get()
    if context is not None:
        return context.services
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    if _default.value is None:
        raise LookupError("no Services available: create one with app.bootstrap.create_runtime() "
                          "or engine.runtime.set_default_services()")
    return _default.value


@contextlib.contextmanager
def using_services(value: Services) -> Iterator[Services]:
    """Make `value` what services() returns in this context (validation, registration)."""
    token = _scoped.set(value)
    try:
        yield value
    finally:
        _scoped.reset(token)


@contextlib.contextmanager
def node_context(context: NodeContext) -> Iterator[NodeContext]:
    token = _node.set(context)
    try:
        yield context
    finally:
        _node.reset(token)


def current_node() -> NodeContext | None:
    return _node.get()


def check_interrupt() -> None:
    """Raise InterruptedByUser if the running prompt was interrupted (no-op outside a node)."""
    context = _node.get()
    if context is not None and context.interrupt is not None and context.interrupt.is_set():
        raise InterruptedByUser("interrupted")


def report_progress(value: int, total: int, preview: tuple[str, bytes] | None = None) -> None:
    """Report progress of the current node (e.g. a sampler step); also observes interrupts.

    `preview` is ("JPEG" | "PNG", encoded image bytes). Outside a node call this only checks
    nothing and returns, so library code can call it unconditionally.
    """
    context = _node.get()
    if context is None:
        return
    check_interrupt()
    if context.on_progress is not None:
        context.on_progress(int(value), int(total), preview)
