"""`python main.py desktop-install [--remove]`: a menu entry, an icon and file associations for
this user (no root), following the XDG specs: applications/latentgraph.desktop and the icon under
$XDG_DATA_HOME (~/.local/share). Workflows (.json) and PNGs appear in the desktop's "Open with"
list; the user's default apps for those types are left as they are."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from desktop.app import ICON

APP_ID = "latentgraph"
MIME_TYPES = ("application/json", "image/png")


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def desktop_entry(python: str, main_py: Path) -> str:
    """The .desktop file's text: `%F` passes the files a user opens with the app."""
    command = " ".join(exec_argument(part) for part in (python, str(main_py), "--desktop"))
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        "Name=Latentgraph",
        "GenericName=Stable Diffusion node editor",
        "Comment=Make images with Stable Diffusion in a node graph",
        f"Exec={command} %F",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Graphics;2DGraphics;",
        "MimeType=" + ";".join(MIME_TYPES) + ";",
        "",
    ])


def exec_argument(text: str) -> str:
    """One Exec= argument quoted as the Desktop Entry spec says (not the shell's single quotes)."""
    text = text.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_./+:=@%,-]+", text):
        return text
    quoted = '"' + re.sub(r'(["`$\\])', r"\\\1", text) + '"'
    return quoted.replace("\\", "\\\\")  # the entry file's own escaping of backslashes


def entry_path(home: Path) -> Path:
    return home / "applications" / f"{APP_ID}.desktop"


def icon_path(home: Path) -> Path:
    return home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"


def install(home: Path, python: str, main_py: Path) -> list[Path]:
    entry, icon = entry_path(home), icon_path(home)
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ICON, icon)
    entry.write_text(desktop_entry(python, main_py), encoding="utf-8")
    entry.chmod(0o755)
    _refresh_menus(home)
    return [entry, icon]


def remove(home: Path) -> list[Path]:
    removed = [p for p in (entry_path(home), icon_path(home)) if p.exists()]
    for path in removed:
        path.unlink()
    _refresh_menus(home)
    return removed


def _refresh_menus(home: Path) -> None:
    """Tell the desktop about the change where its tools exist (they are optional)."""
    if shutil.which("update-desktop-database"):
        subprocess.run(["update-desktop-database", str(home / "applications")], check=False,
                       capture_output=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="main.py desktop-install",
                                     description="Add Latentgraph to this user's desktop menu")
    parser.add_argument("--remove", action="store_true", help="take the menu entry away again")
    args = parser.parse_args(argv)
    home = data_home()
    if args.remove:
        removed = remove(home)
        print("Removed " + ", ".join(map(str, removed)) if removed else "Nothing to remove.")
        return 0
    main_py = Path(__file__).resolve().parent.parent / "main.py"
    for path in install(home, sys.executable, main_py):
        print(f"Wrote {path}")
    print("Latentgraph is in the desktop menu (Graphics); workflows and PNGs list it under "
          "'Open with'.")
    return 0
