"""write_file_atomically: readers never see a torn file, and replace=False never clobbers."""

from pathlib import Path

from engine.imagefiles import write_file_atomically


def test_replace_writes_new_content_and_leaves_no_temp_files(tmp_path: Path):
    target = tmp_path / "sub" / "settings.json"
    assert write_file_atomically(target, b"one")
    assert write_file_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["settings.json"]


def test_without_replace_an_existing_file_is_kept(tmp_path: Path):
    target = tmp_path / "upload.png"
    target.write_bytes(b"original")
    assert write_file_atomically(target, b"intruder", replace=False) is False
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["upload.png"]
    fresh = tmp_path / "fresh.png"
    assert write_file_atomically(fresh, b"new", replace=False) is True
    assert fresh.read_bytes() == b"new"
