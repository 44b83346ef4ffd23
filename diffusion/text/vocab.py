"""The CLIP BPE vocabulary, built offline from the copy the open_clip_torch package ships.

transformers ships no vocabulary files and the hub is out of reach, but ``open_clip_torch``
(installed --no-deps) carries ``open_clip/bpe_simple_vocab_16e6.txt.gz``. We locate it without
importing open_clip (whose import needs torchvision), derive ``vocab.json`` / ``merges.txt`` once
into a cache directory and build transformers' ``CLIPTokenizer`` from them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from transformers import CLIPTokenizer

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
# open_clip/openai CLIP keep exactly this many merges: 49152 ids minus 256 bytes minus 2 specials.
MERGE_COUNT = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


class VocabularyNotFound(RuntimeError):
    """No package that ships the CLIP BPE vocabulary is installed."""


def find_bpe_vocab() -> Path:
    """Path of the gzip BPE file inside an installed package (open_clip first, then clip)."""
    for package in ("open_clip", "clip"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / BPE_FILE_NAME
            if candidate.is_file():
                return candidate
    raise VocabularyNotFound(
        f"the CLIP tokenizer vocabulary ({BPE_FILE_NAME}) was not found; install open_clip_torch "
        "(`pip install --no-deps open_clip_torch`, as `make setup` does)"
    )


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable-character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def build_vocab_and_merges(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """vocab (49408 entries) and merge lines in the same order open_clip's SimpleTokenizer uses."""
    lines = gzip.decompress(bpe_gz.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : MERGE_COUNT + 1]  # line 0 is a version header
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def default_cache_dir() -> Path:
    root = os.environ.get("LATENTGRAPH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "latentgraph"
    )
    return Path(root) / "clip-tokenizer"


def _atomic_write(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_tokenizer_files(cache_dir: Path | None = None, bpe_gz: Path | None = None) -> Path:
    """Directory holding vocab.json and merges.txt for the installed BPE file (created once).

    The directory name carries a hash of the BPE file, so a changed vocabulary never reuses stale
    files. If the cache is not writable (read-only home), the system temp directory is used.
    """
    bpe_gz = bpe_gz or find_bpe_vocab()
    digest = hashlib.sha256(bpe_gz.read_bytes()).hexdigest()[:16]
    roots = [cache_dir or default_cache_dir(), Path(tempfile.gettempdir()) / f"latentgraph-{getattr(os, 'getuid', lambda: 'user')()}" / "clip-tokenizer"]
    vocab: dict[str, int] | None = None
    merges: list[str] = []
    error: OSError | None = None
    for root in roots:
        directory = root / digest
        vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
        if vocab_path.is_file() and merges_path.is_file():
            return directory
        if vocab is None:
            vocab, merges = build_vocab_and_merges(bpe_gz)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _atomic_write(merges_path, "#version: 0.2\n" + "\n".join(merges) + "\n")
            _atomic_write(vocab_path, json.dumps(vocab, ensure_ascii=False))
        except OSError as exc:
            error = exc
            continue
        return directory
    raise OSError(f"cannot write the CLIP tokenizer files to {roots[0]} or {roots[1]}: {error}")


@functools.lru_cache(maxsize=4)
def clip_tokenizer(cache_dir: str | None = None) -> CLIPTokenizer:
    """The shared HF tokenizer (read-only after construction, so one instance per process is safe)."""
    directory = ensure_tokenizer_files(Path(cache_dir) if cache_dir else None)
    # from_pretrained on the local directory works across transformers 4.x (vocab_file=…) and
    # 5.x (vocab=…) constructor spellings.
    return CLIPTokenizer.from_pretrained(
        str(directory),
        local_files_only=True,
        unk_token=END_TOKEN,
        bos_token=START_TOKEN,
        eos_token=END_TOKEN,
        pad_token=END_TOKEN,
        model_max_length=77,
    )
