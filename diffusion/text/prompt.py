"""Prompt-weight syntax: split a prompt into (text, weight) segments.

Syntax (ComfyUI's, plus A1111's de-emphasis brackets):

* ``(text)`` multiplies the weight by 1.1 per nesting level; ``((text))`` → 1.21.
* ``(text:1.3)`` sets the weight to 1.3 (absolute, not multiplied by the outer level).
* ``[text]`` divides the weight by 1.1 per level (A1111 de-emphasis; ComfyUI itself reads brackets
  literally). A1111's prompt-editing form ``[a:b:step]`` is not supported: its text is weighted
  ÷1.1 like any bracket.
* ``\\(`` ``\\)`` ``\\[`` ``\\]`` are literal brackets; any other backslash is kept as is.
* Unbalanced brackets are literal text, so a stray ``)`` never breaks a prompt.
"""

from __future__ import annotations

EMPHASIS = 1.1
_OPEN = {"(": ")", "[": "]"}
_CLOSE = {")": "(", "]": "["}
_ESCAPABLE = set("()[]")


def _scan(text: str) -> tuple[list[str], dict[int, int]]:
    """Characters with escapes resolved, and the matching close index of every real open bracket.

    An escaped bracket is stored as a 2-char item (backslash + char) so it never pairs.
    """
    chars: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            chars.append(text[i : i + 2])
            i += 2
        else:
            chars.append(text[i])
            i += 1
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for index, char in enumerate(chars):
        if char in _OPEN:
            stack.append(index)
        elif char in _CLOSE and stack and chars[stack[-1]] == _CLOSE[char]:
            pairs[stack.pop()] = index
        elif char in _CLOSE and stack:
            # A mismatched closer ("( ]"): the opener stays open, the closer is literal.
            continue
    return chars, pairs


def _explicit_weight(chars: list[str], start: int, end: int, pairs: dict[int, int]) -> tuple[int, float] | None:
    """For ``(text:1.3)`` between start and end: (index of the colon, 1.3), else None."""
    colon = None
    i = start
    while i < end:
        if i in pairs:
            i = pairs[i] + 1
            continue
        if chars[i] == ":":
            colon = i
        i += 1
    if colon is None:
        return None
    try:
        return colon, float("".join(chars[colon + 1 : end]).strip())
    except ValueError:
        return None


def _literal(item: str) -> str:
    return item[1] if len(item) == 2 and item[0] == "\\" else item


def parse_prompt_weights(text: str) -> list[tuple[str, float]]:
    """Segments of literal text with their weights; adjacent equal weights are merged."""
    chars, pairs = _scan(text)
    segments: list[tuple[str, float]] = []

    def emit(piece: str, weight: float) -> None:
        if not piece:
            return
        if segments and segments[-1][1] == weight:
            segments[-1] = (segments[-1][0] + piece, weight)
        else:
            segments.append((piece, weight))

    def walk(start: int, end: int, weight: float) -> None:
        buffer: list[str] = []
        i = start
        while i < end:
            if i in pairs:
                emit("".join(buffer), weight)
                buffer = []
                close = pairs[i]
                if chars[i] == "(":
                    explicit = _explicit_weight(chars, i + 1, close, pairs)
                    if explicit is not None:
                        walk(i + 1, explicit[0], explicit[1])
                    else:
                        walk(i + 1, close, weight * EMPHASIS)
                else:
                    walk(i + 1, close, weight / EMPHASIS)
                i = close + 1
                continue
            buffer.append(_literal(chars[i]))
            i += 1
        emit("".join(buffer), weight)

    walk(0, len(chars), 1.0)
    return segments
