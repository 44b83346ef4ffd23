"""What running one prompt produced: the executor's answer, which front doors store and show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExecutionOutcome:
    """One prompt's result: status, ui outputs, history messages and the run report."""

    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> merged ui dict
    messages: list[list[Any]] = field(default_factory=list)  # [[event, data], ...] as in history
    run_report: dict[str, dict[str, str]] = field(default_factory=dict)  # node id -> {"state", "reason"}
    error: dict[str, Any] | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)  # validation errors
    executed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"
