"""Prompt-weight syntax: ComfyUI's parentheses, A1111 brackets, escapes, unbalanced input."""

import pytest

from diffusion.text.prompt import parse_prompt_weights


def approx(segments):
    return [(text, pytest.approx(weight)) for text, weight in segments]


@pytest.mark.parametrize(
    "prompt,expected",
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (cat)", [("a ", 1.0), ("cat", 1.1)]),
        ("((cat))", [("cat", 1.21)]),
        ("(cat:1.5) dog", [("cat", 1.5), (" dog", 1.0)]),
        ("((cat:0.5))", [("cat", 0.5)]),  # an explicit weight replaces the outer factor
        ("(a (b:1.5) c)", [("a ", 1.1), ("b", 1.5), (" c", 1.1)]),
        ("[cat]", [("cat", 1 / 1.1)]),
        ("[[cat]]", [("cat", 1 / 1.21)]),
        ("([cat])", [("cat", 1.0)]),
        ("\\(cat\\) \\[dog\\]", [("(cat) [dog]", 1.0)]),
        ("(smile\\))", [("smile)", 1.1)]),
        ("a) b", [("a) b", 1.0)]),
        ("(a b", [("(a b", 1.0)]),
        ("(a ] b)", [("a ] b", 1.1)]),
        ("(cat:x)", [("cat:x", 1.1)]),
        ("(ratio 16:9 photo)", [("ratio 16:9 photo", 1.1)]),
        ("(cat: 1.3 )", [("cat", 1.3)]),
        ("C:\\path", [("C:\\path", 1.0)]),
        ("", []),
    ],
)
def test_parse_prompt_weights(prompt, expected):
    assert parse_prompt_weights(prompt) == approx(expected)
