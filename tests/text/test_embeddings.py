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


def test_pickles_needing_code_are_refused(tmp_path):
    import argparse

    path = tmp_path / "evil.pt"  # an arbitrary class the weights_only unpickler refuses
    torch.save({"emb_params": torch.ones(1, 8), "obj": argparse.Namespace(a=1)}, path)
    with pytest.raises(EmbeddingFileError, match="safetensors"):
        load_embedding_file(path)


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
