"""The page's bridge to the desktop shell: dialogs, reading files, writing only chosen files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from desktop.bridge import OPEN, SAVE, DesktopBridge


class FakeWindow:
    def __init__(self, answers: list[object]) -> None:
        self.title = ""
        self.answers = answers
        self.dialogs: list[tuple[int, dict]] = []
        self.scripts: list[str] = []

    def create_file_dialog(self, dialog_type: int, **options: object) -> object:
        self.dialogs.append((dialog_type, options))
        return self.answers.pop(0)

    def evaluate_js(self, script: str) -> None:
        self.scripts.append(script)


def bridge_with(window: FakeWindow) -> DesktopBridge:
    bridge = DesktopBridge()
    bridge._attach(window)
    return bridge


def test_files_from_the_command_line_are_read_once_and_the_page_is_told(tmp_path):
    wf = tmp_path / "flow.json"
    wf.write_text('{"nodes": []}')
    window = FakeWindow([])
    bridge = bridge_with(window)
    bridge._queue_files([str(wf), str(tmp_path / "missing.png")])
    assert window.scripts == ["window.dispatchEvent(new Event('lg-desktop-files'))"]
    first, missing = bridge.take_files()
    assert base64.b64decode(first["data"]) == b'{"nodes": []}' and first["name"] == "flow.json"
    assert "error" in missing and "data" not in missing
    assert bridge.take_files() == []


def test_the_page_cannot_write_a_file_the_user_did_not_choose(tmp_path):
    bridge = bridge_with(FakeWindow([]))
    with pytest.raises(PermissionError):
        bridge.write_file(str(tmp_path / "elsewhere.json"), "{}")
    assert not (tmp_path / "elsewhere.json").exists()


def test_save_dialog_writes_the_chosen_file_and_later_saves_may_rewrite_it(tmp_path):
    target = tmp_path / "saved.json"
    window = FakeWindow([(str(target),)])
    bridge = bridge_with(window)
    written = bridge.save_dialog("My flow.json", '{"v": 1}')
    assert window.dialogs[0][0] == SAVE and window.dialogs[0][1]["save_filename"] == "My flow.json"
    assert written == {"path": str(target.resolve()), "name": "saved.json"}
    bridge.write_file(str(target), '{"v": 2}')
    assert target.read_text() == '{"v": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["saved.json"]  # no temp file left behind


def test_cancelled_dialogs_change_nothing(tmp_path):
    bridge = bridge_with(FakeWindow([None, None]))
    assert bridge.save_dialog("x.json", "{}") is None
    assert bridge.open_dialog() == []


def test_opened_json_may_be_written_back_but_an_opened_png_may_not(tmp_path):
    wf, png = tmp_path / "a.json", tmp_path / "b.png"
    wf.write_text("{}")
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    window = FakeWindow([(str(wf), str(png))])
    bridge = bridge_with(window)
    assert [f["name"] for f in bridge.open_dialog()] == ["a.json", "b.png"]
    assert window.dialogs[0][0] == OPEN
    bridge.write_file(str(wf), '{"ok": true}')
    with pytest.raises(PermissionError):
        bridge.write_file(str(png), "{}")
    assert png.read_bytes() == b"\x89PNG\r\n\x1a\n"


def test_the_title_is_the_pages_text_bounded():
    window = FakeWindow([])
    bridge_with(window).set_title("● Default — Latentgraph" + "x" * 1000)
    assert window.title.startswith("● Default — Latentgraph") and len(window.title) == 300


def test_only_the_documented_methods_are_offered_to_the_page():
    public = sorted(n for n in dir(DesktopBridge) if not n.startswith("_"))
    assert public == ["open_dialog", "save_dialog", "set_title", "take_files", "write_file"]


def test_reading_refuses_files_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr("desktop.bridge.MAX_OPEN_BYTES", 4)
    big = tmp_path / "big.json"
    big.write_text("{}   ")
    bridge = bridge_with(FakeWindow([]))
    bridge._queue_files([str(big)])
    [entry] = bridge.take_files()
    assert "larger than" in entry["error"] and Path(entry["path"]) == big.resolve()
