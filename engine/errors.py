"""Exceptions the engine raises; callers catch these by type, never by message."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for every error the engine raises on purpose."""


class PathEscapeError(EngineError, ValueError):
    """A user-supplied path tried to leave the directory it must stay in."""


class InvalidFileName(EngineError, ValueError):
    """A user-supplied file name that cannot name a file: too long for the file system, or empty."""


class NodeRegistrationError(EngineError):
    """A node class could not be turned into a NodeDefinition, or its name is taken."""


class UnknownNodeError(EngineError, KeyError):
    """A class_type that no registered node provides."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown node"


class InterruptedByUser(EngineError):
    """Raised inside a running node when its prompt was interrupted (cooperative cancel)."""


class DependencyCycleError(EngineError):
    """The graph, or a lazy request made at run time, contains a cycle."""

    def __init__(self, node_ids: list[str]):
        super().__init__("Dependency cycle between nodes " + ", ".join(node_ids))
        self.node_ids = node_ids


class NodeOutputError(EngineError):
    """A node returned something that does not match its declared outputs."""


class InputMutationError(EngineError):
    """Debug mode caught a node mutating an input value it received (possibly a cached one)."""


class WorkflowFormatError(EngineError, ValueError):
    """A workflow file is in none of the formats we can turn into an API prompt."""
