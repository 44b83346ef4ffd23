"""The node registry: one object (not a module global) mapping class_type names to definitions."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from engine.errors import NodeRegistrationError, UnknownNodeError
from engine.nodedef import NodeDefinition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadProblem:
    """A node module or pack that failed to load, or a node it could not register."""

    source: str  # "nodes.loaders", "custom_nodes/my_pack", ...
    message: str
    traceback: str = ""


@dataclass
class NodeRegistry:
    """Holds node definitions; registration turns a V1 class into a NodeDefinition once."""

    _definitions: dict[str, NodeDefinition] = field(default_factory=dict)
    problems: list[LoadProblem] = field(default_factory=list)
    web_directories: dict[str, Path] = field(default_factory=dict)
    # Old names of renamed built-ins (old -> new); used only while no node has the old name.
    aliases: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def register(self, name: str, cls: type, display_name: str | None = None,
                 module: str | None = None) -> NodeDefinition:
        """Register `cls` under `name`; a taken name is an error, never a silent override."""
        if not isinstance(name, str) or not name:
            raise NodeRegistrationError(f"node name must be a non-empty string, got {name!r}")
        if name in self._definitions:
            owner = self._definitions[name].python_module
            raise NodeRegistrationError(
                f"node {name!r} from {module or 'unknown module'} collides with the one already "
                f"registered by {owner}")
        definition = NodeDefinition.from_class(name, cls, display_name=display_name, python_module=module)
        with self._lock:
            self._definitions[name] = definition
        return definition

    def register_mappings(self, class_mappings: dict[str, type], display_names: dict[str, str] | None,
                          module: str, source: str | None = None) -> list[str]:
        """Register a module's NODE_CLASS_MAPPINGS; failures become LoadProblems, not crashes."""
        registered = []
        display_names = display_names or {}
        for name, cls in class_mappings.items():
            if isinstance(cls, type) and not hasattr(cls, "FUNCTION"):  # ComfyUI skips these too
                log.info("%s: %s has no FUNCTION (an info-only class); not registered", source or module, name)
                continue
            try:
                self.register(name, cls, display_name=display_names.get(name), module=module)
            except NodeRegistrationError as exc:
                self.report_problem(source or module, str(exc))
                continue
            registered.append(name)
        return registered

    def report_problem(self, source: str, message: str, traceback: str = "") -> None:
        log.warning("node loading problem in %s: %s", source, message)
        self.problems.append(LoadProblem(source, message, traceback))

    def get(self, name: str) -> NodeDefinition:
        try:
            return self._definitions[self._resolve(name)]
        except KeyError:
            raise UnknownNodeError(f"node {name!r} does not exist") from None

    def _resolve(self, name: str) -> str:
        if name not in self._definitions and name in self.aliases:
            return self.aliases[name]
        return name

    def current(self, name: str) -> NodeDefinition:
        """The definition with INPUT_TYPES re-read (dynamic combos such as file lists)."""
        name = self._resolve(name)
        definition = self.get(name)
        fresh = definition.refreshed()
        if fresh is not definition:
            with self._lock:
                self._definitions[name] = fresh
        return fresh

    def __contains__(self, name: object) -> bool:
        return name in self._definitions or (isinstance(name, str) and self.aliases.get(name) in self._definitions)

    def __len__(self) -> int:
        return len(self._definitions)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._definitions))

    def names(self) -> list[str]:
        return list(self._definitions)

    def display_names(self) -> dict[str, str]:
        return {name: d.display_name for name, d in self._definitions.items()}

    def categories(self) -> list[str]:
        return sorted({d.category for d in self._definitions.values()})

    def object_info_for(self, name: str) -> dict[str, Any]:
        return self.current(name).object_info()

    def object_info(self) -> dict[str, Any]:
        """Every node's `/object_info` entry; a node whose INPUT_TYPES now fails is left out."""
        info = {}
        for name in self.names():
            try:
                info[name] = self.object_info_for(name)
            except NodeRegistrationError as exc:
                log.warning("leaving %s out of object_info: %s", name, exc)
        return info
