"""Import the test-only reference libraries (open_clip, k-diffusion) on a CPU-only torch.

Both declare torchvision as a dependency, and there is no CPU torchvision build we can install
next to torch 2.13.0 (see shared/reference/model-formats.md §7.1). They only touch torchvision
for image transforms we never use, so a stub module is enough for their text towers and samplers.
k-diffusion's package __init__ imports its evaluation code (clip → pkg_resources), so we load its
submodules without running that __init__.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

_STUB_MODULES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.transforms.v2",
    "torchvision.ops",
    "torchvision.ops.misc",
    "torchvision.datasets",
    "torchvision.utils",
    "torchvision.io",
)


class _AnyAttribute(type):
    """Metaclass whose classes answer any attribute with another dummy class."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyAttribute(name, (), {})


def _dummy_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
    module.__path__ = []  # type: ignore[attr-defined]
    module.__version__ = "0.0.0+stub"  # type: ignore[attr-defined]

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _AnyAttribute(attr, (), {})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def install_torchvision_stub() -> None:
    """Register a stand-in torchvision if the real one cannot be imported."""
    if "torchvision" in sys.modules:
        return
    try:
        importlib.import_module("torchvision")
        return
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        for name in list(sys.modules):
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]
    for name in _STUB_MODULES:
        sys.modules[name] = _dummy_module(name)


def import_open_clip() -> types.ModuleType:
    """Return the open_clip module (text towers work with the stub)."""
    install_torchvision_stub()
    return importlib.import_module("open_clip")


def import_k_diffusion() -> types.SimpleNamespace:
    """Return k-diffusion's `sampling` and `external` modules without its package __init__."""
    install_torchvision_stub()
    if "k_diffusion" not in sys.modules or not hasattr(sys.modules["k_diffusion"], "sampling"):
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("k-diffusion is not installed (make setup-dev installs it)")
        package = types.ModuleType("k_diffusion")
        package.__path__ = list(spec.submodule_search_locations)  # type: ignore[attr-defined]
        package.__spec__ = importlib.machinery.ModuleSpec(
            "k_diffusion", loader=None, is_package=True
        )
        package.__spec__.submodule_search_locations = package.__path__
        sys.modules["k_diffusion"] = package
    sampling = importlib.import_module("k_diffusion.sampling")
    external = importlib.import_module("k_diffusion.external")
    return types.SimpleNamespace(sampling=sampling, external=external)
