"""Model folders as users have them: symlinked files and folders inside models/, and the extra
directories of a ComfyUI `extra_model_paths.yaml`. Names a request or workflow gives are still
contained (no `..`, absolute paths, NUL); where a user's own link points is theirs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.bootstrap import build_paths
from app.settings import Settings, add_common_arguments
from engine.errors import PathEscapeError
from engine.extra_model_paths import ExtraModelPathsError, load_extra_model_paths
from engine.paths import FolderPaths


def _file(path: Path, data: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture()
def paths(tmp_path: Path) -> FolderPaths:
    folder_paths = FolderPaths(tmp_path / "base")
    folder_paths.ensure_directories()
    return folder_paths


def test_symlinked_model_files_and_folders_are_listed_and_load(paths, tmp_path) -> None:
    elsewhere = tmp_path / "big-disk"
    real = _file(elsewhere / "sd15.safetensors")
    _file(elsewhere / "loras" / "styles" / "ink.safetensors")
    checkpoints = paths.models_directory / "checkpoints"
    (checkpoints / "linked.safetensors").symlink_to(real)
    (paths.models_directory / "loras" / "shared").symlink_to(elsewhere / "loras",
                                                             target_is_directory=True)
    (checkpoints / "dangling.safetensors").symlink_to(elsewhere / "gone.safetensors")

    assert paths.get_filename_list("checkpoints") == ["linked.safetensors"]
    assert paths.get_full_path("checkpoints", "linked.safetensors").read_bytes() == b"weights"
    assert paths.get_filename_list("loras") == ["shared/styles/ink.safetensors"]
    # every listed name loads: the combos and the loaders agree
    for folder in ("checkpoints", "loras"):
        for name in paths.get_filename_list(folder):
            assert paths.get_full_path(folder, name) is not None, (folder, name)
    assert paths.get_full_path("checkpoints", "dangling.safetensors") is None


def test_names_are_still_contained_in_model_folders(paths, tmp_path) -> None:
    _file(tmp_path / "base" / "secret.safetensors")
    for name in ("../secret.safetensors", "../../base/secret.safetensors",
                 str(tmp_path / "base" / "secret.safetensors"), "C:/x.safetensors",
                 "a\x00.safetensors", "sub/../../secret.safetensors"):
        with pytest.raises(PathEscapeError):
            paths.get_full_path("checkpoints", name)


def test_a_link_loop_inside_models_ends_the_walk(paths) -> None:
    loras = paths.models_directory / "loras"
    _file(loras / "a" / "one.safetensors")
    (loras / "a" / "again").symlink_to(loras, target_is_directory=True)
    _file(loras / "b" / "two.safetensors")
    (loras / "a" / "to_b").symlink_to(loras / "b", target_is_directory=True)
    (loras / "b" / "to_a").symlink_to(loras / "a", target_is_directory=True)
    names = paths.get_filename_list("loras")
    assert {"a/one.safetensors", "b/two.safetensors", "a/to_b/two.safetensors",
            "b/to_a/one.safetensors"} <= set(names)
    assert all(paths.get_full_path("loras", name) for name in names)


def test_input_keeps_refusing_links_that_leave(paths, tmp_path) -> None:
    outside = _file(tmp_path / "outside.png")
    (paths.input_directory / "leaves.png").symlink_to(outside)
    assert paths.list_input_images() == []


YAML = """
# ComfyUI's example layout
a111:
    base_path: {a111}
    checkpoints: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    embeddings: embeddings
    custom_nodes: extensions
    not_a_folder: models/whatever

comfyui:
    base_path: other-comfy/
    is_default: true
    clip: models/clip/
    checkpoints: models/checkpoints/

plain:
    upscale_models: $LG_TEST_UPSCALE
"""


def test_extra_model_paths_yaml_sections_base_path_and_order(paths, tmp_path, monkeypatch,
                                                             caplog) -> None:
    a111 = tmp_path / "webui"
    config_dir = tmp_path / "config"
    monkeypatch.setenv("LG_TEST_UPSCALE", str(tmp_path / "upscalers"))
    config = config_dir / "extra_model_paths.yaml"
    config.parent.mkdir()
    config.write_text(YAML.format(a111=a111))
    _file(a111 / "models" / "Stable-diffusion" / "webui-model.safetensors")
    _file(a111 / "models" / "LyCORIS" / "loha.safetensors")
    _file(config_dir / "other-comfy" / "models" / "checkpoints" / "first.safetensors")
    _file(paths.models_directory / "checkpoints" / "local.safetensors")

    with caplog.at_level(logging.WARNING):
        load_extra_model_paths(paths, config)
    assert "custom_nodes" in caplog.text and "not_a_folder" in caplog.text

    ours = paths.models_directory
    assert paths.get_folder_paths("checkpoints") == [
        config_dir / "other-comfy" / "models" / "checkpoints",  # is_default: searched first
        ours / "checkpoints", a111 / "models" / "Stable-diffusion"]
    assert paths.get_folder_paths("loras") == [ours / "loras", a111 / "models" / "Lora",
                                               a111 / "models" / "LyCORIS"]
    assert paths.get_folder_paths("text_encoders")[0] == \
        config_dir / "other-comfy" / "models" / "clip"  # `clip` is the legacy key
    assert paths.get_folder_paths("upscale_models")[-1] == tmp_path / "upscalers"
    assert paths.get_filename_list("checkpoints") == ["first.safetensors", "local.safetensors",
                                                      "webui-model.safetensors"]
    assert paths.get_full_path("loras", "loha.safetensors") == \
        a111 / "models" / "LyCORIS" / "loha.safetensors"
    # loading the same file twice adds nothing twice
    before = paths.get_folder_paths("loras")
    load_extra_model_paths(paths, config)
    assert paths.get_folder_paths("loras") == before


def test_bad_extra_model_paths_files_are_clear_errors(paths, tmp_path) -> None:
    with pytest.raises(ExtraModelPathsError, match="cannot read"):
        load_extra_model_paths(paths, tmp_path / "missing.yaml")
    for text, message in (("a: [unclosed", "not valid YAML"), ("- a\n- b\n", "sections"),
                          ("s:\n  - loras\n", "must map"), ("s:\n  loras: [a, b]\n", "lines")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ExtraModelPathsError, match=message):
            load_extra_model_paths(paths, bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert load_extra_model_paths(paths, empty) == []


def test_found_at_the_base_directory_and_given_by_flag(tmp_path) -> None:
    import argparse

    base = tmp_path / "base"
    _file(tmp_path / "a" / "x.safetensors")
    _file(tmp_path / "b" / "y.safetensors")
    base.mkdir()
    (base / "extra_model_paths.yaml").write_text(f"mine:\n  vae: {tmp_path / 'a'}\n")
    flag_file = tmp_path / "more.yaml"
    flag_file.write_text(f"more:\n  vae: {tmp_path / 'b'}\n")
    parser = add_common_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--base-directory", str(base),
                              "--extra-model-paths-config", str(flag_file)])
    folder_paths = build_paths(Settings.from_args(args))
    assert folder_paths.get_filename_list("vae") == ["x.safetensors", "y.safetensors"]
    assert build_paths(Settings(base_directory=tmp_path / "elsewhere")) \
        .get_filename_list("vae") == []
