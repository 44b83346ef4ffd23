"""How a worker process builds its runtime: a picklable reference to a factory and its arguments."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuntimeRecipe:
    """`factory` is "package.module:function"; the worker calls it with `args` and `kwargs`.

    The server passes `app.bootstrap:create_runtime` with its Settings, so the worker loads the
    same nodes and packs; tests pass their small runtime builders.
    """

    factory: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        module_name, _, function_name = self.factory.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        return function(*self.args, **self.kwargs)
