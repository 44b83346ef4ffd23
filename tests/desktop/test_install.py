"""`main.py desktop-install`: the XDG menu entry, icon and file types, user-level."""

from __future__ import annotations

import configparser
import shlex

from desktop.install import desktop_entry, exec_argument, install, remove


def test_entry_runs_the_app_in_desktop_mode_with_the_opened_files(tmp_path):
    text = desktop_entry("/opt/py/bin/python", tmp_path / "main.py")
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read_string(text)
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Icon"] == "latentgraph"
    assert shlex.split(section["Exec"]) == ["/opt/py/bin/python", str(tmp_path / "main.py"),
                                            "--desktop", "%F"]
    assert set(section["MimeType"].strip(";").split(";")) == {"application/json", "image/png"}


def test_exec_arguments_are_quoted_as_the_desktop_entry_spec_says():
    assert exec_argument("/usr/bin/python3") == "/usr/bin/python3"
    assert exec_argument("/home/a b/main.py") == '"/home/a b/main.py"'
    # inside quotes ", `, $ and \ take a backslash, which the file format escapes again
    assert exec_argument('/x"y$') == '"/x\\\\"y\\\\$"'
    assert exec_argument("/50%/m.py") == "/50%%/m.py"


def test_install_then_remove_leaves_nothing_behind(tmp_path):
    written = install(tmp_path, "/usr/bin/python3", tmp_path / "main.py")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "applications/latentgraph.desktop", "icons/hicolor/scalable/apps/latentgraph.svg"]
    assert written[1].read_text().startswith("<svg")
    assert sorted(p.name for p in remove(tmp_path)) == ["latentgraph.desktop", "latentgraph.svg"]
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
