"""Textual-inversion files: every common format, safe loading, width checks."""

import pytest
import torch
from safetensors.torch import save_file

from diffusion.text.embeddings import EmbeddingFileError, EmbeddingLibrary, embedding_vectors, load_embedding_file


def test_a1111_string_to_param():
    data = {"string_to_param": {"*": torch.ones(3, 8)}, "name": "x", "step": 100}
    assert embedding_vectors(data, "l").shape == (3, 8)


def test_sdxl_pair_picks_the_part_for_each_encoder():
    data = {"clip_l": torch.zeros(2, 8), "clip_g": torch.ones(2, 16)}
    assert embedding_vectors(data, "l").shape == (2, 8)
    assert embedding_vectors(data, "g").shape == (2, 16)


def test_kohya_and_diffusers_concepts():
    assert embedding_vectors({"emb_params": torch.ones(4, 8)}, "h").shape == (4, 8)
    assert embedding_vectors({"<cat-toy>": torch.ones(8)}, "l").shape == (1, 8)


def test_no_tensor_is_an_error():
    with pytest.raises(EmbeddingFileError):
        embedding_vectors({"name": "x"}, "l")


def test_pt_files_load_with_weights_only(tmp_path):
    path = tmp_path / "style.pt"
    torch.save({"string_to_param": {"*": torch.ones(2, 8)}, "name": "style"}, path)
    assert embedding_vectors(load_embedding_file(path), "l").shape == (2, 8)


def test_pickles_needing_code_are_never_unpickled(tmp_path):
    import argparse

    # zip-format: the refused pickle's tensor storages are read as raw float32 (ComfyUI's fallback)
    path = tmp_path / "old.pt"
    vectors = torch.randn(3, 8)
    torch.save({"emb_params": vectors, "obj": argparse.Namespace(a=1)}, path)
    data = load_embedding_file(path)
    assert torch.equal(embedding_vectors(data, "l", width=8), vectors)
    with pytest.raises(EmbeddingFileError, match="width 5"):
        embedding_vectors(data, "l", width=5)
    # legacy (non-zip) pickles have no separable records: refused
    legacy = tmp_path / "legacy.pt"
    torch.save({"emb_params": vectors, "obj": argparse.Namespace(a=1)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(EmbeddingFileError, match="safetensors"):
        load_embedding_file(legacy)


def test_several_vectors_in_every_format(tmp_path):
    vectors = torch.randn(4, 8)
    torch.save({"string_to_param": {"*": torch.nn.Parameter(vectors)}, "string_to_token": {"*": 265},
                "name": "style", "step": 3000, "sd_checkpoint": "abc", "sd_checkpoint_name": "x"}, tmp_path / "a1111.pt")
    torch.save({"<style>": vectors}, tmp_path / "concept.bin")
    save_file({"emb_params": vectors}, str(tmp_path / "kohya.safetensors"))
    torch.save([{"a": vectors[:1]}, {"b": vectors[1:], "c": torch.zeros(2, 5)}], tmp_path / "parts.pt")
    for name in ("a1111.pt", "concept.bin", "kohya.safetensors", "parts.pt"):
        assert torch.equal(embedding_vectors(load_embedding_file(tmp_path / name), "l", width=8), vectors), name


def test_library_finds_names_with_any_extension_and_checks_width(tmp_path, caplog):
    save_file({"emb_params": torch.ones(2, 8)}, str(tmp_path / "good.safetensors"))
    save_file({"emb_params": torch.ones(2, 16)}, str(tmp_path / "wide.safetensors"))

    def find(name):
        path = tmp_path / name
        return path if path.is_file() else None

    library = EmbeddingLibrary(find, {"l": 8})
    assert library("good", "l").shape == (2, 8)
    assert library("good.safetensors", "l").shape == (2, 8)
    assert library("missing", "l") is None
    with caplog.at_level("WARNING"):
        assert library("wide", "l") is None
    assert "width 16" in caplog.text


def test_sdxl_pair_fills_each_encoder_with_its_own_vectors(tmp_path):
    """Reference: the vectors written into spare rows of copied token tables (how diffusers loads them)."""
    import copy

    from diffusion.text.loader import load_clip
    from diffusion.text.tiny import tiny_text_arch_overrides, tiny_text_encoder_state_dict

    clip = load_clip(tiny_text_encoder_state_dict("sdxl", 0), "sdxl", tiny_text_arch_overrides("sdxl"))
    g = torch.Generator().manual_seed(5)
    parts = {"clip_l": torch.randn(3, 32, generator=g), "clip_g": torch.randn(3, 64, generator=g)}
    save_file(parts, str(tmp_path / "xl.safetensors"))
    with_files = clip.with_embedding_files(lambda name: (tmp_path / name) if (tmp_path / name).is_file() else None)
    cond = with_files.encode_from_tokens(with_files.tokenize("a embedding:xl cat"))

    expected = []
    for key, part in (("l", "clip_l"), ("g", "clip_g")):
        plain_ids = [t for t, _ in clip.tokenize("a cat")[key][0]]  # padding differs: EOS for l, 0 for g
        ids = plain_ids[:2] + [1000, 1001, 1002] + plain_ids[2:74]
        encoder = clip.encoders[key]
        model = copy.deepcopy(encoder.model)
        table = encoder.text_model.embeddings.token_embedding.weight
        table_copy = getattr(model, "text_model", model).embeddings.token_embedding.weight
        assert table_copy.data_ptr() != table.data_ptr()
        with torch.no_grad():
            table_copy[1000:1003] = parts[part]
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-2]
        expected.append(hidden)
    torch.testing.assert_close(cond, torch.cat(expected, dim=-1), atol=1e-5, rtol=1e-5)
