"""ComfyUI's `folder_paths` module for node packs, backed by the running Latentgraph FolderPaths.

Every function reads `engine.runtime.services().paths` when it is called, so two runtimes in one
process never share state. Names come through `engine.paths.contained_path`: where ComfyUI
silently strips `..`, we refuse with `PathEscapeError` (a ValueError).
Module attributes such as `models_dir`, `output_directory` and `folder_names_and_paths` are
computed on access (PEP 562) from the current runtime; `folder_names_and_paths` is a read-only
view — register model folders of known kinds with `add_model_folder_path`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable

from engine.errors import PathEscapeError
from engine.imagefiles import expand_prefix, save_target
from engine.paths import MODEL_EXTENSIONS, MODEL_FOLDERS, FolderPaths, contained_path
from engine.runtime import services

supported_pt_extensions: frozenset[str] = MODEL_EXTENSIONS

_ANNOTATIONS = (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp"))


def _paths() -> FolderPaths:
    return services().paths


def map_legacy(folder_name: str) -> str:
    """`unet` -> `diffusion_models`, `clip` -> `text_encoders` (ComfyUI's legacy names)."""
    return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)


# ---- directories ----------------------------------------------------------------------------
def get_input_directory() -> str:
    return str(_paths().input_directory)


def get_output_directory() -> str:
    return str(_paths().output_directory)


def get_temp_directory() -> str:
    return str(_paths().temp_directory)


def get_user_directory() -> str:
    return str(_paths().user_directory)


def get_directory_by_type(type_name: str) -> str | None:
    """"input" / "output" / "temp" -> directory; None for anything else (as ComfyUI)."""
    try:
        return str(_paths().get_directory_by_type(type_name))
    except ValueError:
        return None


# ---- model folders --------------------------------------------------------------------------
def get_folder_paths(folder_name: str) -> list[str]:
    return [str(p) for p in _paths().get_folder_paths(map_legacy(folder_name))]


def get_filename_list(folder_name: str) -> list[str]:
    """Sorted relative names of the files in a model folder (cached by directory mtimes)."""
    return _paths().get_filename_list(map_legacy(folder_name))


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The existing file `filename` in a model folder, or None; escaping names raise PathEscapeError."""
    found = _paths().get_full_path(map_legacy(folder_name), filename)
    return None if found is None else str(found)


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    return str(_paths().get_full_path_or_raise(map_legacy(folder_name), filename))


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Add a search directory to a known model folder of the current runtime.

    Folders Latentgraph does not know (a pack's own kinds) cannot be created: FolderPaths has a
    fixed set of folder kinds. `is_default` (search this directory first) is not supported:
    extra directories are searched after the standard ones.
    """
    key = map_legacy(folder_name)
    if key not in MODEL_FOLDERS:
        raise KeyError(f"model folder {folder_name!r} is not one Latentgraph knows; "
                       f"known: {', '.join(MODEL_FOLDERS)}")
    _paths().add_model_folder(key, full_folder_path)


def filter_files_extensions(files: Iterable[str], extensions: Iterable[str]) -> list[str]:
    """Files whose extension is in `extensions` (all files when `extensions` is empty), sorted."""
    wanted = {e.lower() for e in extensions}
    return sorted(f for f in files if not wanted or os.path.splitext(f)[1].lower() in wanted)


def _folder_view() -> MappingProxyType:
    paths = _paths()
    view = {}
    for key, (_, extensions) in MODEL_FOLDERS.items():
        view[key] = ([str(p) for p in paths.get_folder_paths(key)],
                     frozenset(extensions) if extensions is not None else frozenset())
    view["custom_nodes"] = ([str(paths.custom_nodes_directory)], frozenset())
    return MappingProxyType(view)


# ---- annotated names ("photo.png [output]") -------------------------------------------------
def annotated_filepath(name: str) -> tuple[str, str | None]:
    """Split a trailing " [output]" / " [input]" / " [temp]" annotation off a file name."""
    for suffix, kind in _ANNOTATIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)].strip(), str(_paths().get_directory_by_type(kind))
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    """Absolute path of an (optionally annotated) name, contained in its directory; else raises."""
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return str(contained_path(base_dir, name))


def exists_annotated_filepath(name: str) -> bool:
    """True if the (optionally annotated) input file exists; names that escape count as missing."""
    try:
        return os.path.exists(get_annotated_filepath(name))
    except PathEscapeError:
        return False


# ---- saving ---------------------------------------------------------------------------------
def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0,
                        image_height: int = 0) -> tuple[str, str, int, str, str]:
    """(full_output_folder, filename, counter, subfolder, filename_prefix) as ComfyUI returns.

    The prefix may hold a subfolder and %width%/%date:...% tokens; the folder must stay inside
    `output_dir` (PathEscapeError otherwise). Missing folders are created.
    """
    expanded = expand_prefix(filename_prefix, image_width, image_height)
    target = save_target(Path(output_dir), expanded, image_width, image_height)
    target.directory.mkdir(parents=True, exist_ok=True)
    return str(target.directory), target.filename, target.counter, target.subfolder, expanded


# ---- module attributes computed from the current runtime (PEP 562) --------------------------
_DYNAMIC = {
    "base_path": lambda: str(_paths().base_directory),
    "models_dir": lambda: str(_paths().models_directory),
    "output_directory": get_output_directory,
    "input_directory": get_input_directory,
    "temp_directory": get_temp_directory,
    "user_directory": get_user_directory,
    "folder_names_and_paths": _folder_view,
}


def __getattr__(name: str) -> Any:
    if name in _DYNAMIC:
        return _DYNAMIC[name]()
    raise AttributeError(f"module 'folder_paths' has no attribute {name!r} (Latentgraph's ComfyUI "
                         "compatibility layer; see custom_nodes/README.md)")
