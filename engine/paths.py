"""Folder layout (ComfyUI folder names) and the one helper that keeps user paths inside a root."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import PathEscapeError

MODEL_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

# folder key -> (directories under models/, allowed extensions; None = any file)
MODEL_FOLDERS: dict[str, tuple[tuple[str, ...], frozenset[str] | None]] = {
    "checkpoints": (("checkpoints",), MODEL_EXTENSIONS),
    "configs": (("configs",), frozenset({".yaml"})),
    "loras": (("loras",), MODEL_EXTENSIONS),
    "vae": (("vae",), MODEL_EXTENSIONS),
    "text_encoders": (("text_encoders", "clip"), MODEL_EXTENSIONS),
    "diffusion_models": (("unet", "diffusion_models"), MODEL_EXTENSIONS),
    "clip_vision": (("clip_vision",), MODEL_EXTENSIONS),
    "style_models": (("style_models",), MODEL_EXTENSIONS),
    "embeddings": (("embeddings",), MODEL_EXTENSIONS),
    "diffusers": (("diffusers",), frozenset({"folder"})),
    "vae_approx": (("vae_approx",), MODEL_EXTENSIONS),
    "controlnet": (("controlnet", "t2i_adapter"), MODEL_EXTENSIONS),
    "gligen": (("gligen",), MODEL_EXTENSIONS),
    "upscale_models": (("upscale_models",), MODEL_EXTENSIONS),
    "hypernetworks": (("hypernetworks",), MODEL_EXTENSIONS),
    "photomaker": (("photomaker",), MODEL_EXTENSIONS),
    "classifiers": (("classifiers",), None),
    "model_patches": (("model_patches",), MODEL_EXTENSIONS),
    "audio_encoders": (("audio_encoders",), MODEL_EXTENSIONS),
}
LEGACY_FOLDER_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}
DIRECTORY_TYPES = ("input", "output", "temp")

_DRIVE = re.compile(r"^[A-Za-z]:")


def _split_user_part(part: str) -> list[str]:
    """Split one user-supplied fragment into components, refusing anything that could escape."""
    if not isinstance(part, str):
        raise PathEscapeError(f"path component must be a string, got {type(part).__name__}")
    if "\x00" in part:
        raise PathEscapeError("path contains a NUL byte")
    normalised = part.replace("\\", "/")
    if normalised.startswith("/") or _DRIVE.match(normalised):
        raise PathEscapeError(f"absolute path not allowed: {part!r}")
    components = [c for c in normalised.split("/") if c not in ("", ".")]
    if any(c == ".." for c in components):
        raise PathEscapeError(f"'..' not allowed in path: {part!r}")
    return components


def contained_path(root: str | os.PathLike[str], *user_parts: str) -> Path:
    """Resolve user-supplied relative path parts under `root`, or raise PathEscapeError.

    Refuses `..`, absolute paths, drive letters and NUL bytes outright, then resolves symlinks
    and checks the result is still inside `root`. Every route, node and CLI argument that takes
    a user path goes through this function; the returned path need not exist.
    """
    base = Path(root).resolve()
    components: list[str] = []
    for part in user_parts:
        components.extend(_split_user_part(part))
    candidate = base.joinpath(*components).resolve()
    if candidate != base and not candidate.is_relative_to(base):
        raise PathEscapeError(f"path leaves its folder: {'/'.join(components)!r}")
    return candidate


def model_file_path(root: str | os.PathLike[str], *user_parts: str) -> Path:
    """A user-given name under a model folder root, checked by the name alone.

    The name may not escape (`..`, absolute paths, drive letters and NUL are refused), but
    symlinks are followed wherever they point: a link a user placed inside models/ (or an
    extra model directory) is theirs to follow, as ComfyUI does. Only model folders use this;
    input/, output/, temp/ and user/ keep `contained_path`, which also refuses links that leave.
    """
    components: list[str] = []
    for part in user_parts:
        components.extend(_split_user_part(part))
    return Path(root).joinpath(*components)


def _stays_inside(root: Path, name: str) -> bool:
    try:
        contained_path(root, name)
    except PathEscapeError:
        return False
    return True


@dataclass(frozen=True)
class _ListingCacheEntry:
    stamps: tuple[tuple[str, float], ...]
    names: tuple[str, ...]


class FolderPaths:
    """Where models, inputs, outputs, temp files and user data live for one runtime.

    Listings are cached per folder and revalidated by the mtimes of every directory walked,
    so a new file shows up in the next listing without a restart.
    """

    def __init__(
        self,
        base_directory: str | os.PathLike[str],
        *,
        output_directory: str | os.PathLike[str] | None = None,
        input_directory: str | os.PathLike[str] | None = None,
        temp_directory: str | os.PathLike[str] | None = None,
        user_directory: str | os.PathLike[str] | None = None,
        models_directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_directory = Path(base_directory).resolve()
        self.models_directory = Path(models_directory or self.base_directory / "models").resolve()
        self.output_directory = Path(output_directory or self.base_directory / "output").resolve()
        self.input_directory = Path(input_directory or self.base_directory / "input").resolve()
        self.temp_directory = Path(temp_directory or self.base_directory / "temp").resolve()
        self.user_directory = Path(user_directory or self.base_directory / "user").resolve()
        self.custom_nodes_directory = self.base_directory / "custom_nodes"
        self._extra: dict[str, list[Path]] = {}
        self._extra_first: dict[str, list[Path]] = {}  # extra_model_paths `is_default` entries
        self._listing_cache: dict[str, _ListingCacheEntry] = {}

    # ---- layout -------------------------------------------------------------------------
    def ensure_directories(self) -> None:
        """Create input/output/temp/user and the model folders if they are missing."""
        for directory in (self.output_directory, self.input_directory, self.temp_directory,
                          self.user_directory):
            directory.mkdir(parents=True, exist_ok=True)
        for dirs, _ in MODEL_FOLDERS.values():
            (self.models_directory / dirs[0]).mkdir(parents=True, exist_ok=True)

    def add_model_folder(self, folder: str, directory: str | os.PathLike[str], *,
                         first: bool = False) -> None:
        """Add a search directory for a model folder key (extra_model_paths.yaml, packs):
        after models/, or ahead of it with `first`. A directory already searched is kept once."""
        key = self._key(folder)
        path = Path(directory).expanduser().absolute()
        if path in self.get_folder_paths(key):
            return
        (self._extra_first if first else self._extra).setdefault(key, []).append(path)
        self._listing_cache.pop(key, None)

    @staticmethod
    def folder_names() -> list[str]:
        return list(MODEL_FOLDERS)

    def _key(self, folder: str) -> str:
        key = LEGACY_FOLDER_NAMES.get(folder, folder)
        if key not in MODEL_FOLDERS:
            raise KeyError(f"unknown model folder {folder!r}; known: {', '.join(MODEL_FOLDERS)}")
        return key

    def get_folder_paths(self, folder: str) -> list[Path]:
        """Every directory searched for a model folder key, in priority order."""
        key = self._key(folder)
        dirs, _ = MODEL_FOLDERS[key]
        return (self._extra_first.get(key, []) + [self.models_directory / d for d in dirs]
                + self._extra.get(key, []))

    def get_directory_by_type(self, kind: str) -> Path:
        """The input/output/temp directory by its ComfyUI name ("input", "output", "temp")."""
        if kind == "input":
            return self.input_directory
        if kind == "output":
            return self.output_directory
        if kind == "temp":
            return self.temp_directory
        raise ValueError(f"unknown directory type {kind!r}; expected one of {DIRECTORY_TYPES}")

    # ---- listings -----------------------------------------------------------------------
    def get_filename_list(self, folder: str) -> list[str]:
        """Sorted relative names (with '/' separators) of the files in a model folder."""
        key = self._key(folder)
        _, extensions = MODEL_FOLDERS[key]
        roots = self.get_folder_paths(key)
        cached = self._listing_cache.get(key)
        if cached is not None and self._stamps_valid(cached.stamps):
            return list(cached.names)
        names, stamps = _walk(roots, extensions)
        self._listing_cache[key] = _ListingCacheEntry(stamps, tuple(names))
        return names

    def list_input_images(self) -> list[str]:
        """Image files in input/ and its subfolders, as relative names: only those LoadImage
        will load (a symlink leaving input/ is listed by the walk but refused on loading)."""
        names, _ = _walk([self.input_directory], IMAGE_EXTENSIONS)
        return [name for name in names if _stays_inside(self.input_directory, name)]

    @staticmethod
    def _stamps_valid(stamps: tuple[tuple[str, float], ...]) -> bool:
        for directory, mtime in stamps:
            try:
                if os.stat(directory).st_mtime != mtime:
                    return False
            except OSError:
                if mtime != -1.0:
                    return False
        return True

    def get_full_path(self, folder: str, name: str) -> Path | None:
        """The existing file `name` inside a model folder, or None; escaping names raise.
        Symlinks inside the folder are followed (see `model_file_path`), so every name
        `get_filename_list` offers loads."""
        for root in self.get_folder_paths(folder):
            candidate = model_file_path(root, name)
            if candidate.is_file():
                return candidate
        return None

    def get_full_path_or_raise(self, folder: str, name: str) -> Path:
        path = self.get_full_path(folder, name)
        if path is None:
            raise FileNotFoundError(f"{name!r} not found in models folder {folder!r} "
                                    f"(searched {', '.join(str(p) for p in self.get_folder_paths(folder))})")
        return path

    def __repr__(self) -> str:
        return f"FolderPaths(base={str(self.base_directory)!r})"


def _walk(roots: list[Path], extensions: frozenset[str] | None) -> tuple[list[str], tuple]:
    """Recursive listing of several roots, following symlinked folders (but not a link back to
    a folder above, so a loop ends) and listing only names that are files (no dangling links);
    returns the names and the mtimes of the walked directories."""
    names: set[str] = set()
    stamps: list[tuple[str, float]] = []
    for root in roots:
        if not root.is_dir():
            stamps.append((str(root), -1.0))
            continue
        chains: dict[str, frozenset[str]] = {str(root): frozenset({os.path.realpath(root)})}
        for directory, subdirs, files in os.walk(root, followlinks=True):
            chain = chains.pop(directory, frozenset())
            kept = []
            for name in sorted(d for d in subdirs if not d.startswith(".")):
                real = os.path.realpath(os.path.join(directory, name))
                if real not in chain:  # a link back to a folder above: a loop, not walked
                    kept.append(name)
                    chains[os.path.join(directory, name)] = chain | {real}
            subdirs[:] = kept
            try:
                stamps.append((directory, os.stat(directory).st_mtime))
            except OSError:
                continue
            rel_dir = PurePosixPath(Path(directory).relative_to(root).as_posix())
            for filename in files:
                if filename.startswith("."):
                    continue
                suffix = os.path.splitext(filename)[1].lower()
                if extensions is not None and suffix not in extensions:
                    continue
                if not os.path.isfile(os.path.join(directory, filename)):
                    continue
                rel = rel_dir / filename
                names.add(str(rel) if str(rel_dir) != "." else filename)
    return sorted(names), tuple(stamps)
