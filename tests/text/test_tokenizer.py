"""Tokenisation equals open_clip's SimpleTokenizer, with SD's BOS/EOS, padding and chunking rules."""

import pytest

from diffusion.text.arch import BOS_TOKEN, EOS_TOKEN
from diffusion.text.tokenizer import SDTokenizer, normalize_text
from diffusion.text.vocab import build_vocab_and_merges, find_bpe_vocab
from tests.support.reference_imports import import_open_clip

TEXTS = [
    "a photo of a cat",
    "Don't STOP — café naïve, it's O'Neil's",
    "ＡＢＣ ｆｕｌｌｗｉｄｔｈ letters",
    "salt &amp; pepper &amp;amp; &lt;tag&gt;",
    "emoji 🐱 and 中文 text",
    "multiple   spaces\tand\nnewlines",
    "numbers 12345 and 3.14159, 8k uhd",
    "hyper-detailed!!! ???",
]


@pytest.fixture(scope="module")
def reference():
    return import_open_clip()


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_equal_open_clip_simple_tokenizer(reference, text):
    expected = reference.tokenizer.SimpleTokenizer().encode(text)
    assert SDTokenizer("g", 0).token_ids(text) == expected


@pytest.mark.parametrize("text", TEXTS)
def test_bigg_chunk_equals_open_clip_tokenize_with_zero_padding(reference, text):
    expected = reference.tokenize([text])[0].tolist()
    [chunk] = SDTokenizer("g", pad_token=0).tokenize_with_weights(text)
    assert [t for t, _ in chunk] == expected


def test_clip_l_pads_with_end_token():
    [chunk] = SDTokenizer("l", pad_token=EOS_TOKEN).tokenize_with_weights("a photo of a cat")
    ids = [t for t, _ in chunk]
    assert ids[:7] == [BOS_TOKEN, 320, 1125, 539, 320, 2368, EOS_TOKEN]
    assert ids[7:] == [EOS_TOKEN] * 70 and len(ids) == 77


def test_empty_prompt_is_one_chunk_of_bos_eos_padding():
    [chunk] = SDTokenizer("h", pad_token=0).tokenize_with_weights("")
    assert [t for t, _ in chunk] == [BOS_TOKEN, EOS_TOKEN] + [0] * 75
    assert all(w == 1.0 for _, w in chunk)


def test_normalisation_unescapes_html_and_folds_fullwidth():
    assert normalize_text("  ＡＢＣ &amp;amp;  x ") == "abc & x"


def test_vocabulary_has_49408_entries_with_special_tokens_last():
    vocab, merges = build_vocab_and_merges(find_bpe_vocab())
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == BOS_TOKEN and vocab["<|endoftext|>"] == EOS_TOKEN


def _ids(chunk):
    return [t for t, _ in chunk]


def test_long_prompt_is_split_into_chunks_of_75_tokens():
    tokenizer = SDTokenizer("l", EOS_TOKEN)
    chunks = tokenizer.tokenize_with_weights("cat " * 100)  # "cat" is one token
    assert len(chunks) == 2
    assert all(len(c) == 77 and c[0][0] == BOS_TOKEN for c in chunks)
    assert _ids(chunks[0]).count(2368) == 75 and _ids(chunks[0])[76] == EOS_TOKEN
    assert _ids(chunks[1]).count(2368) == 25 and _ids(chunks[1])[26] == EOS_TOKEN


def test_short_words_move_whole_to_the_next_chunk():
    tokenizer = SDTokenizer("l", EOS_TOKEN)
    word = "photorealistic"  # several tokens, fewer than 8
    word_ids = tokenizer.token_ids(word)
    assert 1 < len(word_ids) <= 7
    chunks = tokenizer.tokenize_with_weights("cat " * 74 + word)
    assert _ids(chunks[0])[1:76] == [2368] * 74 + [EOS_TOKEN]
    assert _ids(chunks[1])[1 : 1 + len(word_ids)] == word_ids


def test_words_longer_than_seven_tokens_are_split_at_the_chunk_end():
    tokenizer = SDTokenizer("l", EOS_TOKEN)
    word = "-".join(["x"] * 10)  # 19 tokens
    word_ids = tokenizer.token_ids(word)
    assert len(word_ids) >= 8
    chunks = tokenizer.tokenize_with_weights("cat " * 70 + word)
    assert _ids(chunks[0])[71:76] == word_ids[:5]
    assert _ids(chunks[1])[1 : 1 + len(word_ids) - 5] == word_ids[5:]


def test_weights_follow_their_words_across_chunks():
    tokenizer = SDTokenizer("l", EOS_TOKEN)
    [chunk] = tokenizer.tokenize_with_weights("a (red:1.5) [fox]")
    weights = {t: w for t, w in chunk[1:4]}
    red, fox = tokenizer.token_ids("red")[0], tokenizer.token_ids("fox")[0]
    assert weights[320] == 1.0 and weights[red] == 1.5 and weights[fox] == pytest.approx(1 / 1.1)


def test_missing_embedding_is_dropped_with_a_warning(caplog):
    tokenizer = SDTokenizer("l", EOS_TOKEN)
    with caplog.at_level("WARNING"):
        [chunk] = tokenizer.tokenize_with_weights("a embedding:nothere, cat")
    assert "nothere" in caplog.text
    assert _ids(chunk)[:5] == [BOS_TOKEN, 320, 267, 2368, EOS_TOKEN]  # "a" "," "cat"


def test_word_ids_number_words_and_leave_specials_at_zero():
    [chunk] = SDTokenizer("l", EOS_TOKEN).tokenize_with_weights("a (big:1.3) cat", return_word_ids=True)
    assert chunk[0] == (BOS_TOKEN, 1.0, 0)
    assert [item[2] for item in chunk[1:4]] == [1, 2, 3]
    assert chunk[2][1] == 1.3 and chunk[4][2] == 0


def test_tokenizer_files_are_written_once_and_fall_back_when_cache_is_read_only(tmp_path):
    from diffusion.text.vocab import ensure_tokenizer_files

    first = ensure_tokenizer_files(tmp_path / "cache")
    stamp = (first / "vocab.json").stat().st_mtime_ns
    assert ensure_tokenizer_files(tmp_path / "cache") == first
    assert (first / "vocab.json").stat().st_mtime_ns == stamp
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    fallback = ensure_tokenizer_files(blocker / "cache")
    assert (fallback / "merges.txt").read_text().startswith("#version: 0.2\n")


def test_embedding_slots_carry_their_weight_and_trailing_comma_stays_text():
    import torch

    from diffusion.text.tokenizer import EmbeddingVector

    vectors = torch.ones(2, 32)
    calls = []

    def resolver(name, key):
        calls.append((name, key))
        return vectors if name == "sub/style" else None

    [chunk] = SDTokenizer("l", EOS_TOKEN).tokenize_with_weights("a (embedding:sub/style,:1.2) cat", resolver)
    assert calls == [("sub/style", "l")]
    assert all(isinstance(t, EmbeddingVector) and w == 1.2 for t, w in chunk[2:4])
    assert chunk[4] == (267, 1.2)  # the comma
    assert chunk[5][0] == 2368  # cat


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PRINTABLE = st.characters(whitelist_categories=("L", "M", "N", "P", "S", "Zs"), max_codepoint=0x2FFFF)


_REFERENCE_TOKENIZER = []


def _simple_tokenizer():
    if not _REFERENCE_TOKENIZER:
        _REFERENCE_TOKENIZER.append(import_open_clip().tokenizer.SimpleTokenizer())
    return _REFERENCE_TOKENIZER[0]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=_PRINTABLE, max_size=30))
def test_any_printable_text_tokenizes_like_open_clip(text):
    assert SDTokenizer("g", 0).token_ids(text) == _simple_tokenizer().encode(text)


def test_special_token_text_in_a_prompt_is_not_a_control_token(reference):
    text = "a <|endoftext|> b"
    assert SDTokenizer("l", EOS_TOKEN).token_ids(text) == reference.tokenizer.SimpleTokenizer().encode(text)
