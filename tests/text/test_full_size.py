"""Full-size text-encoder architectures: key sets and parameter counts on the meta device (§8.1)."""

import pytest
import torch
from torch import nn

from diffusion.text.arch import FULL_SIZE
from diffusion.text.convert import canonical_key_shapes, open_clip_key_shapes, open_clip_to_canonical
from diffusion.text.model import build_text_model, canonical_to_model_keys
from tests.support.reference_imports import import_open_clip


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_clip_l_parameter_count():
    assert _params(build_text_model(FULL_SIZE["clip_l"])) == 123_060_480


def test_vit_h_parameter_count_with_and_without_projection():
    arch = FULL_SIZE["clip_h"]
    with_projection = _params(build_text_model(arch))
    from dataclasses import replace

    without = _params(build_text_model(replace(arch, projection_dim=None)))
    assert without == 352_984_064
    assert with_projection - without == 1_048_576


def test_bigg_with_projection_parameter_count():
    assert _params(build_text_model(FULL_SIZE["clip_g"])) == 694_659_840


@pytest.mark.parametrize("name", ["clip_l", "clip_h", "clip_g"])
def test_canonical_keys_and_shapes_match_the_transformers_model(name):
    arch = FULL_SIZE[name]
    model = build_text_model(arch)
    names = canonical_to_model_keys(model)
    shapes = canonical_key_shapes(arch)
    assert set(names) == set(shapes)
    state = model.state_dict()
    assert all(tuple(state[names[k]].shape) == shape for k, shape in shapes.items())


@pytest.mark.parametrize("name", ["clip_h", "clip_g"])
def test_open_clip_native_keys_match_open_clip_and_convert_to_canonical(name):
    arch = FULL_SIZE[name]
    open_clip = import_open_clip()
    with torch.device("meta"):
        tower = open_clip.transformer.TextTransformer(
            context_length=77, vocab_size=49408, width=arch.width, heads=arch.heads,
            layers=arch.layers, output_dim=arch.projection_dim, act_layer=nn.GELU,
        )
    reference = {k: tuple(v.shape) for k, v in tower.state_dict().items()}
    ours = open_clip_key_shapes(arch, with_logit_scale=False)
    assert ours == reference
    meta = {k: torch.empty(s, device="meta") for k, s in ours.items()}
    converted = open_clip_to_canonical(meta, "")
    assert {k: tuple(v.shape) for k, v in converted.items()} == canonical_key_shapes(arch)
