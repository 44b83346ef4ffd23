"""contained_path is the one guard for user-supplied paths; FolderPaths lists model folders."""

import os

import pytest

from engine.errors import PathEscapeError
from engine.paths import FolderPaths, contained_path


@pytest.mark.parametrize("parts", [
    ("../etc/passwd",), ("a/../../b",), ("..",), ("/etc/passwd",), ("C:/Windows",), ("c:evil",),
    ("a\\..\\..\\b",), ("\\\\server\\share",), ("ok", "../x"), ("bad\x00name",),
])
def test_escapes_are_refused(tmp_path, parts):
    with pytest.raises(PathEscapeError):
        contained_path(tmp_path, *parts)


def test_plain_relative_paths_resolve_inside(tmp_path):
    assert contained_path(tmp_path, "sub", "file.png") == (tmp_path / "sub" / "file.png").resolve()
    assert contained_path(tmp_path, "sub/dir/./file.png") == (tmp_path / "sub/dir/file.png").resolve()
    assert contained_path(tmp_path, "") == tmp_path.resolve()


def test_symlink_leaving_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    os.symlink(outside, root / "link")
    with pytest.raises(PathEscapeError):
        contained_path(root, "link/secret.txt")
    os.symlink(root / "inner", root / "ok_link")
    assert contained_path(root, "ok_link/a") == (root / "inner" / "a").resolve()


def test_folder_listing_and_lookup(tmp_path):
    paths = FolderPaths(tmp_path)
    paths.ensure_directories()
    (tmp_path / "models/checkpoints/sub").mkdir(parents=True)
    (tmp_path / "models/checkpoints/a.safetensors").write_bytes(b"x")
    (tmp_path / "models/checkpoints/sub/b.ckpt").write_bytes(b"x")
    (tmp_path / "models/checkpoints/notes.txt").write_text("x")
    assert paths.get_filename_list("checkpoints") == ["a.safetensors", "sub/b.ckpt"]
    (tmp_path / "models/checkpoints/c.safetensors").write_bytes(b"x")
    assert "c.safetensors" in paths.get_filename_list("checkpoints")  # mtime invalidation
    assert paths.get_full_path("checkpoints", "sub/b.ckpt") == (tmp_path / "models/checkpoints/sub/b.ckpt").resolve()
    assert paths.get_full_path("checkpoints", "missing.safetensors") is None
    with pytest.raises(PathEscapeError):
        paths.get_full_path("checkpoints", "../../etc/passwd")
    (tmp_path / "models/clip").mkdir(parents=True, exist_ok=True)
    (tmp_path / "models/clip/te.safetensors").write_bytes(b"x")
    assert paths.get_filename_list("clip") == paths.get_filename_list("text_encoders") == ["te.safetensors"]
    with pytest.raises(KeyError):
        paths.get_filename_list("nonsense")


def test_directories_follow_the_base_and_overrides(tmp_path):
    paths = FolderPaths(tmp_path, output_directory=tmp_path / "elsewhere")
    assert paths.input_directory == (tmp_path / "input").resolve()
    assert paths.output_directory == (tmp_path / "elsewhere").resolve()
    assert paths.get_directory_by_type("temp") == (tmp_path / "temp").resolve()
    with pytest.raises(ValueError):
        paths.get_directory_by_type("models")


def test_input_listing_offers_only_names_that_load(tmp_path):
    paths = FolderPaths(tmp_path / "base")
    paths.ensure_directories()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    (paths.input_directory / "mine.png").write_bytes(b"x")
    (paths.input_directory / "inner").mkdir()
    (paths.input_directory / "inner" / "deep.png").write_bytes(b"x")
    os.symlink(outside / "secret.png", paths.input_directory / "leaves.png")
    os.symlink(outside, paths.input_directory / "away")
    os.symlink(paths.input_directory / "inner", paths.input_directory / "stays")
    assert paths.list_input_images() == ["inner/deep.png", "mine.png", "stays/deep.png"]
    for name in paths.list_input_images():
        contained_path(paths.input_directory, name)
