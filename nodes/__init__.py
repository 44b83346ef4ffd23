"""Built-in nodes. Every module here that exports NODE_CLASS_MAPPINGS is registered at start-up
by app.bootstrap.create_runtime (discovered with pkgutil; nothing is registered at import).

ComfyUI packs import this package as ComfyUI's `nodes` module; the names they use
(`NODE_CLASS_MAPPINGS`, `SaveImage`, `common_ksampler`, ...) are answered lazily by
compat.builtin_nodes, so importing `nodes` stays free of side effects.
"""

from typing import Any

# ComfyUI's `nodes.MAX_RESOLUTION`: custom node packs commonly read it as `nodes.MAX_RESOLUTION`.
MAX_RESOLUTION = 16384


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from compat.builtin_nodes import comfyui_name

    return comfyui_name(name)
