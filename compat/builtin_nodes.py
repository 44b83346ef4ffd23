"""ComfyUI's core names answered from Latentgraph's own nodes: what `nodes.X` means to a pack.

ComfyUI packs do `from nodes import SaveImage, common_ksampler, NODE_CLASS_MAPPINGS`. Our top-level
`nodes` package forwards unknown attributes here (module `__getattr__`), so nothing is imported
until a pack asks. Core node classes are our built-in classes of the same name; the mappings are
the registry of the runtime that is loading or running the pack (engine.runtime.services()).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from engine import runtime


def builtin_node_class(name: str) -> type | None:
    """Our built-in node class registered as `name` (ComfyUI's core node of that name), or None."""
    import nodes as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        mappings = getattr(importlib.import_module(f"nodes.{info.name}"), "NODE_CLASS_MAPPINGS", None) or {}
        if name in mappings:
            return mappings[name]
    return None


def common_ksampler(model: Any, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                    positive: list, negative: list, latent: dict[str, Any], denoise: float = 1.0,
                    disable_noise: bool = False, start_step: int | None = None, last_step: int | None = None,
                    force_full_denoise: bool = False) -> tuple[dict[str, Any]]:
    """ComfyUI's `nodes.common_ksampler`: KSampler(Advanced)'s body, with progress and previews."""
    from diffusion.sampling.pipeline import common_ksampler as sample
    from nodes.sampling import step_callback

    return (sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                   denoise=denoise, add_noise=not disable_noise, start_step=start_step, last_step=last_step,
                   force_full_denoise=force_full_denoise, callback=step_callback(model)),)


def _registry() -> Any:
    registry = runtime.services().registry
    if registry is None:
        raise LookupError("nodes.NODE_CLASS_MAPPINGS needs a runtime built by app.bootstrap.create_runtime")
    return registry


def comfyui_name(name: str) -> Any:
    """The value of `nodes.<name>` in ComfyUI's terms; AttributeError when we have no such name."""
    if name == "NODE_CLASS_MAPPINGS":  # a snapshot: adding to it registers nothing (see README)
        registry = _registry()
        return {node: registry.get(node).node_class for node in registry.names()}
    if name == "NODE_DISPLAY_NAME_MAPPINGS":
        return _registry().display_names()
    if name == "common_ksampler":
        return common_ksampler
    if not name.startswith("_"):
        cls = builtin_node_class(name)
        if cls is not None:
            return cls
    raise AttributeError(f"module 'nodes' has no attribute {name!r} (not a ComfyUI core name Latentgraph provides)")


def module_getattr(module: str, names: dict[str, str], values: dict[str, Any] | None = None):
    """A module `__getattr__` answering ComfyUI's Python names in `module` (a comfy_extras module)
    with our built-in node classes (`names`: ComfyUI class name -> our node name) or `values`."""
    def __getattr__(name: str) -> Any:
        if values and name in values:
            return values[name]
        cls = builtin_node_class(names[name]) if name in names else None
        if cls is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r} "
                                 "(not a ComfyUI name Latentgraph provides)")
        return cls

    return __getattr__
