"""ComfyUI's `folder_paths` module for node packs, backed by the running Latentgraph FolderPaths.

Every function reads `engine.runtime.services().paths` when it is called, so two runtimes in one
process never share state. Names come through `engine.paths.contained_path`: where ComfyUI
silently strips `..`, we refuse with `PathEscapeError` (a ValueError).
Module attributes such as `models_dir`, `output_directory` and `folder_names_and_paths` are
computed on access (PEP 562) from the current runtime.

Folder kinds Latentgraph knows (checkpoints, loras, ...) live in FolderPaths. Kinds a pack
defines for itself (`folder_names_and_paths["ipadapter"] = ([dir], extensions)` or
`add_model_folder_path("ipadapter", dir)`) are kept per FolderPaths in `_pack_folders`, the one
registry here, so they belong to the runtime that loaded the pack.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable

from engine.errors import PathEscapeError
from engine.imagefiles import expand_prefix, save_target
from engine.paths import LEGACY_FOLDER_NAMES, MODEL_EXTENSIONS, MODEL_FOLDERS, FolderPaths, contained_path
from engine.runtime import services

supported_pt_extensions: frozenset[str] = MODEL_EXTENSIONS

_ANNOTATIONS = (("[output]", "output"), ("[input]", "input"), ("[temp]", "temp"))

# Registry of pack-defined folder kinds, per runtime: FolderPaths -> {kind: ([dirs], {extensions})}.
_pack_folders: "weakref.WeakKeyDictionary[FolderPaths, dict[str, tuple[list[str], set[str]]]]" = (
    weakref.WeakKeyDictionary())


def _paths() -> FolderPaths:
    return services().paths


def map_legacy(folder_name: str) -> str:
    """`unet` -> `diffusion_models`, `clip` -> `text_encoders` (ComfyUI's legacy names)."""
    return LEGACY_FOLDER_NAMES.get(folder_name, folder_name)


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
def _pack_kinds(paths: FolderPaths) -> dict[str, tuple[list[str], set[str]]]:
    kinds = _pack_folders.get(paths)
    if kinds is None:
        kinds = _pack_folders[paths] = {}
    return kinds


def _pack_kind(folder_name: str) -> tuple[list[str], set[str]] | None:
    """The ([dirs], extensions) of a pack-defined kind, None for a kind FolderPaths knows."""
    key = map_legacy(folder_name)
    if key in MODEL_FOLDERS:
        return None
    kinds = _pack_folders.get(_paths(), {})
    if key not in kinds:
        raise KeyError(f"unknown model folder {folder_name!r}; known: "
                       f"{', '.join([*MODEL_FOLDERS, *kinds])}")
    return kinds[key]


def get_folder_paths(folder_name: str) -> list[str]:
    pack = _pack_kind(folder_name)
    if pack is not None:
        return list(pack[0])
    return [str(p) for p in _paths().get_folder_paths(map_legacy(folder_name))]


def _list_files(directories: Iterable[str], extensions: set[str]) -> list[str]:
    wanted = {e.lower() for e in extensions}
    names: set[str] = set()
    for root in directories:
        for directory, subdirs, files in os.walk(root, followlinks=True):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            relative = os.path.relpath(directory, root)
            for filename in files:
                if filename.startswith(".") or (wanted and os.path.splitext(filename)[1].lower() not in wanted):
                    continue
                names.add(filename if relative == "." else f"{relative}/{filename}".replace(os.sep, "/"))
    return sorted(names)


def get_filename_list(folder_name: str) -> list[str]:
    """Sorted relative names of the files in a model folder (known kinds cached by directory mtimes)."""
    pack = _pack_kind(folder_name)
    if pack is not None:
        return _list_files(pack[0], pack[1])
    return _paths().get_filename_list(map_legacy(folder_name))


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The existing file `filename` in a model folder, or None; escaping names raise PathEscapeError."""
    pack = _pack_kind(folder_name)
    if pack is None:
        found = _paths().get_full_path(map_legacy(folder_name), filename)
        return None if found is None else str(found)
    for root in pack[0]:
        candidate = contained_path(root, filename)
        if candidate.is_file():
            return str(candidate)
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    found = get_full_path(folder_name, filename)
    if found is None:
        raise FileNotFoundError(f"{filename!r} not found in models folder {folder_name!r}")
    return found


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Add a search directory to a model folder kind of the current runtime.

    A kind Latentgraph does not know becomes a pack-defined kind (any file extension, as
    ComfyUI). `is_default` puts the directory first for pack-defined kinds; for known kinds
    extra directories are always searched after the standard ones.
    """
    key = map_legacy(folder_name)
    paths = _paths()
    if key in MODEL_FOLDERS:
        paths.add_model_folder(key, full_folder_path)
        return
    dirs, _ = _pack_kinds(paths).setdefault(key, ([], set()))
    directory = str(Path(full_folder_path).resolve())
    if directory in dirs:
        dirs.remove(directory)
    if is_default:
        dirs.insert(0, directory)
    else:
        dirs.append(directory)


def filter_files_extensions(files: Iterable[str], extensions: Iterable[str]) -> list[str]:
    """Files whose extension is in `extensions` (all files when `extensions` is empty), sorted."""
    wanted = {e.lower() for e in extensions}
    return sorted(f for f in files if not wanted or os.path.splitext(f)[1].lower() in wanted)


class FolderTable(MutableMapping):
    """`folder_names_and_paths` of one runtime: {kind: ([dirs], extensions)}.

    Known kinds are computed from FolderPaths; assigning one adds its new directories as extra
    search paths (directories cannot be removed, extensions not changed). Pack-defined kinds
    are stored as given, so packs may also append to their lists in place.
    """

    def __init__(self, paths: FolderPaths) -> None:
        self._paths = paths

    def __getitem__(self, key: str) -> tuple[list[str], Any]:
        key = map_legacy(key)
        if key in MODEL_FOLDERS:
            _, extensions = MODEL_FOLDERS[key]
            return ([str(p) for p in self._paths.get_folder_paths(key)],
                    set(extensions) if extensions is not None else set())
        if key == "custom_nodes":
            return [str(self._paths.custom_nodes_directory)], set()
        return _pack_kinds(self._paths)[key]

    def __setitem__(self, key: str, value: tuple[Iterable[str], Iterable[str]]) -> None:
        directories, extensions = value
        key = map_legacy(key)
        if key == "custom_nodes":
            raise TypeError("the custom_nodes folder cannot be changed by a pack")
        if key in MODEL_FOLDERS:
            current = {str(p) for p in self._paths.get_folder_paths(key)}
            for directory in directories:
                if str(Path(directory).resolve()) not in current:
                    self._paths.add_model_folder(key, directory)
            return
        _pack_kinds(self._paths)[key] = ([str(Path(d).resolve()) for d in directories], set(extensions))

    def __delitem__(self, key: str) -> None:
        if map_legacy(key) in MODEL_FOLDERS or key == "custom_nodes":
            raise TypeError(f"model folder {key!r} cannot be removed")
        del _pack_kinds(self._paths)[key]

    def __iter__(self) -> Iterator[str]:
        yield from MODEL_FOLDERS
        yield "custom_nodes"
        yield from _pack_folders.get(self._paths, {})

    def __len__(self) -> int:
        return len(MODEL_FOLDERS) + 1 + len(_pack_folders.get(self._paths, {}))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (map_legacy(key) in MODEL_FOLDERS or key == "custom_nodes"
                                         or key in _pack_folders.get(self._paths, {}))


def _folder_table() -> FolderTable:
    return FolderTable(_paths())


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
_DYNAMIC = MappingProxyType({
    "base_path": lambda: str(_paths().base_directory),
    "models_dir": lambda: str(_paths().models_directory),
    "output_directory": get_output_directory,
    "input_directory": get_input_directory,
    "temp_directory": get_temp_directory,
    "user_directory": get_user_directory,
    "folder_names_and_paths": _folder_table,
})


def __getattr__(name: str) -> Any:
    if name in _DYNAMIC:
        return _DYNAMIC[name]()
    raise AttributeError(f"module 'folder_paths' has no attribute {name!r} (Latentgraph's ComfyUI "
                         "compatibility layer; see custom_nodes/README.md)")
