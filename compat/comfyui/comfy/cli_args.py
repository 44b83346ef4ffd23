"""ComfyUI's `comfy.cli_args` for node packs: `args` is a read-only view of the runtime's flags.

`from comfy.cli_args import args` builds the view from `engine.runtime.services().settings` at
the time of the import statement (PEP 562), so it reflects the runtime loading the pack.
Only flags Latentgraph has are present; reading another one raises AttributeError naming it.
"""

from __future__ import annotations

import enum
from typing import Any

from engine.runtime import services


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


class ReadOnlyArgs:
    """Attribute access to a fixed set of flag values; assignment is refused."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"comfy.cli_args.args has no {name!r}: Latentgraph does not have that "
                                 "flag") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("comfy.cli_args.args is read-only in Latentgraph")

    def __repr__(self) -> str:
        return f"ReadOnlyArgs({self._values!r})"


def _args() -> ReadOnlyArgs:
    settings = dict(services().settings)
    method = settings.get("preview_method")
    try:
        settings["preview_method"] = LatentPreviewMethod(method)
    except ValueError:
        pass  # an unknown name stays a string
    return ReadOnlyArgs(settings)


def __getattr__(name: str) -> Any:
    if name == "args":
        return _args()
    raise AttributeError(f"module 'comfy.cli_args' has no attribute {name!r}")
