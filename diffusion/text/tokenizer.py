"""Stable Diffusion tokenisation: weighted words → 77-token chunks with BOS/EOS and per-encoder padding.

A prompt becomes a list of chunks; each chunk is 77 ``(token, weight)`` pairs:
``BOS, up to 75 prompt tokens, EOS, padding``. A token is a vocabulary id, or an
`EmbeddingVector` for a textual-inversion slot. Words of at most 7 tokens are moved whole to the
next chunk rather than split (as ComfyUI does); longer words are split where the chunk ends.
Text is normalised like open_clip's tokenizer (ftfy, HTML unescape twice, whitespace collapse,
lowercase) so tokens equal open_clip's on any text of assigned characters. Known difference:
characters that only recent Unicode versions define (e.g. CJK extension G, plane 3) are letters to
open_clip's `regex` module but not to the tokenizers library, so their word boundaries can differ.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffusion.text.arch import BOS_TOKEN, CONTEXT_LENGTH, EOS_TOKEN
from diffusion.text.prompt import parse_prompt_weights

log = logging.getLogger(__name__)

EMBEDDING_PREFIX = "embedding:"
MAX_UNSPLIT_WORD_TOKENS = 7
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, eq=False)
class EmbeddingVector:
    """One textual-inversion vector standing in a token slot (its width must match the encoder)."""

    name: str
    vector: torch.Tensor


Token = int | EmbeddingVector
# (token, weight) pairs; (token, weight, word_id) triples when word ids were asked for.
Chunk = list[tuple]
# Returns the embedding's vectors [n, width] for an encoder key ("l", "h", "g"), or None if unknown.
EmbeddingResolver = Callable[[str, str], "torch.Tensor | None"]


def normalize_text(text: str) -> str:
    """open_clip's cleaning: ftfy, HTML unescape twice, whitespace collapse, lowercase."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return _WHITESPACE.sub(" ", text).strip().lower()


def _word_pieces(text: str) -> list[str]:
    return [word for word in _WHITESPACE.split(text) if word]


class SDTokenizer:
    """Prompt → chunks for one text encoder (`key` "l"/"h"/"g", pad id 49407 for CLIP-L, 0 for OpenCLIP)."""

    def __init__(self, key: str, pad_token: int, hf_tokenizer=None) -> None:
        self.key = key
        self.pad_token = pad_token
        self._hf = hf_tokenizer

    @property
    def hf(self):
        if self._hf is None:
            from diffusion.text.vocab import clip_tokenizer

            self._hf = clip_tokenizer()
        return self._hf

    def encode_words(self, words: list[str]) -> list[list[int]]:
        """BPE ids (no BOS/EOS) of already-normalised words; batched through the fast tokenizer."""
        if not words:
            return []
        # split_special_tokens: a prompt that spells "<|endoftext|>" gets ordinary text tokens, as
        # with open_clip, instead of an EOS that would move the pooled position.
        encoded = self.hf(words, add_special_tokens=False, split_special_tokens=True)
        return [list(ids) for ids in encoded["input_ids"]]

    def token_ids(self, text: str) -> list[int]:
        """Ids of plain text without BOS/EOS or weighting syntax (normalised like open_clip)."""
        return [i for ids in self.encode_words(_word_pieces(normalize_text(text))) for i in ids]

    def weighted_word_groups(
        self, text: str, embeddings: EmbeddingResolver | None = None
    ) -> list[tuple[list[Token], float]]:
        """Each word's tokens with its weight, in prompt order; ``embedding:NAME`` becomes vectors."""
        groups: list[tuple[list[Token], float]] = []
        for segment, weight in parse_prompt_weights(text):
            for kind, value in _split_embeddings(segment):
                if kind == "text":
                    words = _word_pieces(normalize_text(value))
                    groups.extend((ids, weight) for ids in self.encode_words(words) if ids)
                    continue
                vectors = self._embedding(value, embeddings)
                if vectors is not None:
                    groups.append(([EmbeddingVector(value, v) for v in vectors], weight))
        return groups

    def _embedding(self, name: str, embeddings: EmbeddingResolver | None) -> torch.Tensor | None:
        vectors = embeddings(name, self.key) if embeddings is not None and name else None
        if vectors is None:
            log.warning("embedding %r was not found in the embeddings folders or does not fit this text encoder; the word is ignored", name)
        return vectors

    def tokenize_with_weights(
        self, text: str, embeddings: EmbeddingResolver | None = None, return_word_ids: bool = False
    ) -> list[Chunk]:
        """Chunks of exactly 77 (token, weight) pairs; at least one chunk, even for an empty prompt.

        With `return_word_ids` each item is (token, weight, word_id): words count from 1 in prompt
        order, BOS/EOS/padding have id 0 (ComfyUI's convention, used by prompt-scheduling nodes).
        """
        room = CONTEXT_LENGTH - 2
        chunks: list[list[tuple[Token, float, int]]] = []
        current: list[tuple[Token, float, int]] = []

        def close() -> None:
            nonlocal current
            chunk = [(BOS_TOKEN, 1.0, 0), *current, (EOS_TOKEN, 1.0, 0)]
            chunk += [(self.pad_token, 1.0, 0)] * (CONTEXT_LENGTH - len(chunk))
            chunks.append(chunk)
            current = []

        for word_id, (tokens, weight) in enumerate(self.weighted_word_groups(text, embeddings), start=1):
            items = [(token, weight, word_id) for token in tokens]
            if len(current) + len(items) > room and len(items) <= MAX_UNSPLIT_WORD_TOKENS and current:
                close()
            while len(current) + len(items) > room:
                take = room - len(current)
                current.extend(items[:take])
                items = items[take:]
                close()
            current.extend(items)
        if current or not chunks:
            close()
        if return_word_ids:
            return chunks  # type: ignore[return-value]
        return [[(token, weight) for token, weight, _ in chunk] for chunk in chunks]


def _split_embeddings(segment: str) -> list[tuple[str, str]]:
    """("text", words) and ("embedding", name) runs of one weighted segment, in order.

    ``embedding:NAME`` is recognised at the start of a whitespace-separated word; trailing commas
    belong to the prompt, not the file name (``embedding:style,`` → name ``style`` then ``,``).
    """
    runs: list[tuple[str, str]] = []
    pending: list[str] = []
    for word in _word_pieces(segment):
        if not word.startswith(EMBEDDING_PREFIX):
            pending.append(word)
            continue
        if pending:
            runs.append(("text", " ".join(pending)))
            pending = []
        rest = word[len(EMBEDDING_PREFIX):]
        name = rest.rstrip(",")
        if name:
            runs.append(("embedding", name))
        if rest[len(name):]:
            pending.append(rest[len(name):])
    if pending:
        runs.append(("text", " ".join(pending)))
    return runs
