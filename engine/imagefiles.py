"""Saving images safely: ComfyUI's file naming, prefix expansion, atomic never-overwrite writes.

Lives in the engine (stdlib only) because the rules are about the output folder, not about
pixels: nodes pass encoded bytes in.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidFileName, PathEscapeError
from engine.paths import contained_path

# Bounds checked before any expansion or directory scan, so a huge prefix costs nothing.
# A name component must leave room for ComfyUI's "_00001_" counter and an extension inside the
# 255-byte NAME_MAX of common file systems.
MAX_PREFIX_CHARS = 1024
MAX_NAME_BYTES = 200

_DATE_TOKENS = (("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("hh", "%H"), ("mm", "%M"),
                ("ss", "%S"))


def _format_date(fmt: str, now: time.struct_time) -> str:
    pattern = re.compile("|".join(token for token, _ in _DATE_TOKENS))
    mapping = dict(_DATE_TOKENS)
    return pattern.sub(lambda m: time.strftime(mapping[m.group(0)], now), fmt)


def expand_prefix(prefix: str, width: int, height: int, now: time.struct_time | None = None) -> str:
    """Expand %width% %height% %year% %month% %day% %hour% %minute% %second% %date% %date:FMT%."""
    now = now or time.localtime()
    prefix = re.sub(r"%date:([^%]+)%", lambda m: _format_date(m.group(1), now), prefix)
    replacements = {
        "%width%": str(width), "%height%": str(height), "%year%": time.strftime("%Y", now),
        "%month%": time.strftime("%m", now), "%day%": time.strftime("%d", now),
        "%hour%": time.strftime("%H", now), "%minute%": time.strftime("%M", now),
        "%second%": time.strftime("%S", now), "%date%": time.strftime("%Y-%m-%d", now),
    }
    for token, value in replacements.items():
        prefix = prefix.replace(token, value)
    return prefix


@dataclass(frozen=True)
class SaveTarget:
    directory: Path  # where files go (inside the root)
    filename: str  # base name without counter
    subfolder: str  # relative to the root, '/'-separated ("" for the root itself)
    counter: int  # first free counter


def save_target(root: Path, prefix: str, width: int, height: int) -> SaveTarget:
    """Split a filename prefix into a contained subfolder and a name; find the next counter."""
    if len(prefix) > MAX_PREFIX_CHARS:
        raise InvalidFileName(f"filename_prefix is {len(prefix)} characters long; at most "
                              f"{MAX_PREFIX_CHARS} are allowed")
    expanded = expand_prefix(prefix, width, height).replace("\\", "/")
    subfolder, _, filename = expanded.rpartition("/")
    if not filename or filename in (".", ".."):
        raise PathEscapeError(f"filename_prefix {prefix!r} does not name a file")
    longest = max(len(part.encode("utf-8", "surrogatepass")) for part in expanded.split("/"))
    if longest > MAX_NAME_BYTES:
        raise InvalidFileName(f"filename_prefix has a folder or file name of {longest} bytes; at most "
                              f"{MAX_NAME_BYTES} are allowed")
    directory = contained_path(root, subfolder) if subfolder else Path(root).resolve()
    contained_path(directory, filename)  # the name itself must not carry separators or NULs
    relative = directory.relative_to(Path(root).resolve()).as_posix()
    return SaveTarget(directory, filename, "" if relative == "." else relative,
                      next_counter(directory, filename))


def next_counter(directory: Path, filename: str) -> int:
    """ComfyUI's rule: one more than the highest `{filename}_{NNNNN}` already present."""
    stem = filename + "_"
    highest = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 1
    for name in names:
        if name.startswith(stem):
            rest = name[len(stem):]
            number = rest[:len(rest) - len(rest.lstrip("0123456789"))]
            if number:
                highest = max(highest, int(number))
    return highest + 1


def _temp_copy(directory: Path, data: bytes) -> str:
    """Write `data` to a fsynced temporary file in `directory` (same filesystem as the target)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".lg-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temp_name)
        raise
    return temp_name


def write_file_atomically(target: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write `data` to `target` so readers see the old file or the new one, never a torn one.

    With `replace=False` an existing file is left alone and False is returned (hard link,
    which fails on an existing name, so two writers cannot clobber each other).
    """
    temp_name = _temp_copy(target.parent, data)
    try:
        if replace:
            os.replace(temp_name, target)
            return True
        try:
            os.link(temp_name, target)
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def write_new_file(directory: Path, name_for_counter, counter: int, data: bytes) -> tuple[str, int]:
    """Atomically write `data` under the first free name; never replaces an existing file.

    The bytes go to a temporary file in the same directory first (fsynced), which is then
    hard-linked to the final name: linking fails if the name exists, so a concurrent writer
    can never be overwritten and readers never see a half-written file. Where hard links are
    unsupported, os.replace is used after an existence check. Returns (file name, counter).
    """
    temp_name = _temp_copy(directory, data)
    try:
        for attempt in range(counter, counter + 100000):
            name = name_for_counter(attempt)
            final = directory / name
            try:
                os.link(temp_name, final)
                return name, attempt
            except FileExistsError:
                continue
            except OSError:  # no hard links on this filesystem
                if final.exists():
                    continue
                os.replace(temp_name, final)
                return name, attempt
        raise FileExistsError(f"no free file name in {directory}")
    finally:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
