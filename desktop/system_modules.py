"""Make Debian's PyGObject (`python3-gi`) importable from our virtual environment.

pywebview's GTK backend needs `gi`, which PyPI ships only as a source build needing a compiler
and GObject headers; Debian ships it prebuilt for the system Python. When our interpreter has the
same ABI, a finder that answers exactly the names `gi` and `cairo` from the system folder lends
them without putting the rest of the system's packages on sys.path.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import sysconfig
from pathlib import Path

SYSTEM_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
LENT_MODULES = frozenset({"gi", "cairo"})


class SystemModuleFinder(importlib.abc.MetaPathFinder):
    """Finds only LENT_MODULES, only in `directory`, and only after every other finder failed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find_spec(self, fullname: str, path=None, target=None):  # noqa: ANN001 (importlib API)
        if path is not None or fullname not in LENT_MODULES:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(self.directory)])


def abi_matches(directory: Path) -> bool:
    """True when the system's compiled gi extension is built for this interpreter."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ""
    return any((directory / "gi").glob(f"_gi{suffix}"))


def lend_system_gi(directory: Path = SYSTEM_DIST_PACKAGES) -> bool:
    """Install the finder when `gi` is missing here but usable from `directory`; True if `gi` imports."""
    try:
        import gi  # noqa: F401
        return True
    except ImportError:
        pass
    if not abi_matches(directory):
        return False
    if not any(isinstance(f, SystemModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(SystemModuleFinder(directory))
    try:
        import gi  # noqa: F401,F811
        return True
    except ImportError:
        return False
