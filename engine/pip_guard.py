"""Refuse `pip install` from inside the process: packs may not change the environment behind our back.

A pack that runs `subprocess.run([sys.executable, "-m", "pip", "install", ...])`, `os.system("pip
install ...")` or `pip.main([...])` at import or run time gets a PermissionError, and the refusal
is logged and recorded for the load report. Implemented with an audit hook (PEP 578), installed
once by the pack loader; it cannot be removed, so it is only installed when packs are loaded.
Installing dependencies is the job of the pack installer, which runs pip in its own process.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)

# Refusals seen while a pack loads (the loader sets a fresh list per pack).
refusals: ContextVar[list[str] | None] = ContextVar("latentgraph_pip_refusals", default=None)
_PIP_ENTRY_MODULES = frozenset({"pip._internal.cli.main", "pip._internal.main"})


class _Installed:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


_installed = _Installed()


def _words(command: Any) -> list[str]:
    if isinstance(command, (str, bytes)):
        text = command.decode(errors="replace") if isinstance(command, bytes) else command
        return text.replace('"', " ").replace("'", " ").split()
    if isinstance(command, (list, tuple)):
        return [os.path.basename(str(os.fsdecode(w) if isinstance(w, bytes) else w)) for w in command]
    return []


def is_pip_install(command: Any) -> bool:
    """True for an argv or shell line that runs `pip install` (pip, pip3, -m pip, uv pip)."""
    words = [os.path.basename(w) for w in _words(command)]
    for i, word in enumerate(words):
        if word.startswith("pip") and word.rstrip("0123456789.") == "pip" and "install" in words[i + 1:i + 3]:
            return True
    return False


def _refuse(what: str) -> None:
    message = f"a node pack tried to install Python packages at run time ({what}); refused"
    log.error("%s", message)
    found = refusals.get()
    if found is not None:
        found.append(what)
    raise PermissionError(message + ": install a pack's requirements with the pack installer")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen" and is_pip_install(args[1]):
        _refuse(" ".join(_words(args[1]))[:200])
    elif event == "os.system" and is_pip_install(args[0]):
        _refuse(str(args[0])[:200])
    elif event in ("os.posix_spawn", "os.exec") and is_pip_install(args[1]):
        _refuse(" ".join(_words(args[1]))[:200])
    elif event == "import" and args[0] in _PIP_ENTRY_MODULES:
        _refuse("pip.main")


def install() -> None:
    """Install the audit hook once per process."""
    if not _installed.done:
        sys.addaudithook(_hook)
        _installed.done = True
