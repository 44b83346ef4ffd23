"""`extra_model_paths.yaml` in ComfyUI's format: more directories to search per model folder.

The file has any number of sections (ComfyUI's example names them `a111` and `comfyui`); each
maps folder keys to one directory or several (a block string, one per line), optionally under a
`base_path`. Relative paths are relative to `base_path`, or to the YAML file's own folder when
there is none; `~` and `$VARS` are expanded. `is_default: true` puts the section's directories
ahead of models/. Keys that are not model folders (`custom_nodes`, a pack's own kinds) are
skipped with a warning: we search custom nodes only in custom_nodes/.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from engine.paths import FolderPaths

log = logging.getLogger(__name__)

FILE_NAME = "extra_model_paths.yaml"


class ExtraModelPathsError(ValueError):
    """The YAML file cannot be read or is not shaped as ComfyUI's."""


@dataclass(frozen=True)
class ExtraFolder:
    folder: str
    directory: Path
    first: bool


def _expand(text: str) -> str:
    return os.path.expanduser(os.path.expandvars(text.strip()))


def parse_extra_model_paths(text: str, config_dir: Path) -> list[ExtraFolder]:
    """The (folder key, directory, ahead-of-models/) entries a YAML document names, in order."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExtraModelPathsError(f"not valid YAML: {exc}") from None
    if document is None:
        return []
    if not isinstance(document, dict):
        raise ExtraModelPathsError("expected sections (a111:, comfyui:, ...) at the top level")
    entries: list[ExtraFolder] = []
    for section, body in document.items():
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ExtraModelPathsError(f"section {section!r} must map folder names to paths")
        body = dict(body)
        base_value = body.pop("base_path", None)
        first = body.pop("is_default", False) is True
        base = None
        if base_value is not None:
            base = Path(_expand(str(base_value)))
            if not base.is_absolute():
                base = config_dir / base
        for folder, value in body.items():
            if not isinstance(value, (str, int, float)):
                raise ExtraModelPathsError(f"{section}.{folder} must be a path or lines of paths")
            for line in str(value).splitlines():
                if not line.strip():
                    continue
                directory = Path(_expand(line))
                if not directory.is_absolute():
                    directory = (base or config_dir) / directory
                entries.append(ExtraFolder(str(folder), Path(os.path.normpath(directory)), first))
    return entries


def load_extra_model_paths(paths: FolderPaths, config: Path) -> list[ExtraFolder]:
    """Add the directories `config` names to `paths`; returns those added."""
    try:
        text = config.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExtraModelPathsError(f"cannot read {config}: {exc.strerror or exc}") from None
    try:
        entries = parse_extra_model_paths(text, config.resolve().parent)
    except ExtraModelPathsError as exc:
        raise ExtraModelPathsError(f"{config}: {exc}") from None
    added = []
    for entry in entries:
        try:
            paths.add_model_folder(entry.folder, entry.directory, first=entry.first)
        except KeyError:
            log.warning("%s: %r is not a model folder we search; skipped", config, entry.folder)
            continue
        if not entry.directory.is_dir():
            log.warning("%s: %s (for %s) does not exist yet", config, entry.directory,
                        entry.folder)
        added.append(entry)
    return added


def default_configs(base_directory: Path, explicit: tuple[Path, ...]) -> list[Path]:
    """The files to load: `<base>/extra_model_paths.yaml` when present, then the flags' files."""
    found = base_directory / FILE_NAME
    configs = [found] if found.is_file() else []
    return configs + [Path(p) for p in explicit if Path(p) not in configs]

