"""Mask nodes against references: numpy brute force, PIL channels, and the formulas ComfyUI documents."""

import numpy as np
import pytest
import torch
from PIL import Image

from nodes import mask as mask_nodes
from tests.support.engine_fixtures import make_runtime, node, run


@pytest.fixture
def runtime(tmp_path):
    return make_runtime(tmp_path)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def window_reference(array, radius_y, radius_x, reduce, shape_ok=lambda dy, dx: True):
    """Min/max over the in-bounds neighbourhood of every pixel (loops: the definition itself)."""
    height, width = array.shape[-2:]
    out = np.empty_like(array)
    for i in range(height):
        for j in range(width):
            values = [array[..., i + dy, j + dx]
                      for dy in range(-radius_y, radius_y + 1) for dx in range(-radius_x, radius_x + 1)
                      if 0 <= i + dy < height and 0 <= j + dx < width and shape_ok(dy, dx)]
            out[..., i, j] = reduce(np.stack(values), axis=0)
    return out


def test_load_image_mask_reads_each_channel_and_inverts_alpha(runtime):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").save(runtime.paths.input_directory / "m.png")
    prompt = {str(i): node("LoadImageMask", image="m.png", channel=channel)
              for i, channel in enumerate(["alpha", "red", "green", "blue"])}
    for i in range(4):
        prompt[f"p{i}"] = node("MaskPreview", mask=[str(i), 0])
    outcome, _ = run(runtime, prompt)
    assert outcome.ok, outcome.error
    loader = mask_nodes.LoadImageMask()
    from engine.runtime import using_services
    with using_services(runtime.services):
        alpha, = loader.load_image("m.png", "alpha")
        green, = loader.load_image("m.png", "green")
    assert alpha.shape == (1, 5, 7)
    np.testing.assert_allclose(alpha[0].numpy(), 1 - pixels[..., 3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(green[0].numpy(), pixels[..., 1] / 255.0, atol=1e-6)


def test_load_image_mask_alpha_of_an_opaque_image_is_empty(runtime):
    Image.new("RGB", (3, 2), (10, 20, 30)).save(runtime.paths.input_directory / "o.png")
    from engine.runtime import using_services
    with using_services(runtime.services):
        alpha, = mask_nodes.LoadImageMask().load_image("o.png", "alpha")
        red, = mask_nodes.LoadImageMask().load_image("o.png", "red")
    assert torch.equal(alpha, torch.zeros(1, 2, 3))
    assert torch.allclose(red, torch.full((1, 2, 3), 10 / 255))


def test_mask_image_round_trip_and_channels():
    mask = rand(2, 4, 5)
    image, = mask_nodes.MaskToImage().mask_to_image(mask)
    assert image.shape == (2, 4, 5, 3) and all(torch.equal(image[..., c], mask) for c in range(3))
    rgba = rand(2, 4, 5, 4, seed=1)
    for index, channel in enumerate(["red", "green", "blue", "alpha"]):
        assert torch.equal(mask_nodes.ImageToMask().image_to_mask(rgba, channel)[0], rgba[..., index])


def test_image_color_to_mask_matches_exact_8bit_colour():
    pixels = np.array([[[255, 0, 0], [254, 0, 0]], [[0, 128, 255], [255, 0, 0]]], dtype=np.uint8)
    image = torch.from_numpy(pixels / 255.0).float()[None]
    mask, = mask_nodes.ImageColorToMask().image_to_mask(image, 0xFF0000)
    assert mask.tolist() == [[[1.0, 0.0], [0.0, 1.0]]]
    assert mask_nodes.ImageColorToMask().image_to_mask(image, 0x0080FF)[0].tolist() == [[[0.0, 0.0], [1.0, 0.0]]]


def test_solid_invert_crop_threshold():
    solid, = mask_nodes.SolidMask().solid(0.25, 6, 3)
    assert solid.shape == (1, 3, 6) and torch.all(solid == 0.25)
    mask = rand(2, 6, 8)
    assert torch.equal(mask_nodes.InvertMask().invert(mask)[0], 1.0 - mask)
    assert torch.equal(mask_nodes.CropMask().crop(mask, 2, 1, 3, 4)[0], mask[:, 1:5, 2:5])
    assert torch.equal(mask_nodes.CropMask().crop(mask[0], 6, 4, 10, 10)[0], mask[:1, 4:, 6:])
    assert torch.equal(mask_nodes.ThresholdMask().image_to_mask(mask, 0.5)[0], (mask > 0.5).float())


@pytest.mark.parametrize("operation", ["multiply", "add", "subtract", "and", "or", "xor"])
def test_mask_composite_against_numpy(operation):
    destination, source = rand(1, 6, 7).numpy(), rand(1, 4, 5, seed=3).numpy()
    x, y = 4, 3  # the source hangs over the bottom-right edge
    expected = destination.copy()
    d = expected[:, y:, x:]
    s = source[:, :d.shape[1], :d.shape[2]]
    db, sb = np.round(d) > 0, np.round(s) > 0
    d[...] = {"multiply": d * s, "add": d + s, "subtract": d - s, "and": (db & sb).astype(np.float32),
              "or": (db | sb).astype(np.float32), "xor": (db ^ sb).astype(np.float32)}[operation]
    got, = mask_nodes.MaskComposite().combine(torch.from_numpy(destination), torch.from_numpy(source), x, y, operation)
    np.testing.assert_allclose(got.numpy(), np.clip(expected, 0, 1), atol=1e-6)


def test_feather_mask_ramps_every_edge_linearly():
    ones = torch.ones(1, 6, 10)
    got, = mask_nodes.FeatherMask().feather(ones, 4, 2, 3, 0)
    expected = np.ones((6, 10), dtype=np.float32)
    for column in range(4):  # outermost left column keeps 1/4, then 2/4 ...
        expected[:, column] *= (column + 1) / 4
    for step in range(3):
        expected[:, 9 - step] *= (step + 1) / 3
    for row in range(2):
        expected[row, :] *= (row + 1) / 2
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("expand,tapered", [(2, True), (3, False), (-1, True), (-2, False), (0, True)])
def test_grow_mask_is_dilation_or_erosion_by_a_diamond_or_square(expand, tapered):
    mask = (rand(1, 9, 11, seed=5) > 0.7).float() * rand(1, 9, 11, seed=6)
    if expand < 0:
        mask = 1 - mask
    radius = abs(expand)
    shape_ok = (lambda dy, dx: abs(dy) + abs(dx) <= radius) if tapered else (lambda dy, dx: True)
    expected = window_reference(mask.numpy(), radius, radius, np.max if expand >= 0 else np.min, shape_ok)
    got, = mask_nodes.GrowMask().expand_mask(mask, expand, tapered)
    np.testing.assert_allclose(got.numpy(), expected, atol=0)


@pytest.mark.parametrize("operation", ["erode", "dilate", "open", "close", "gradient", "top_hat", "bottom_hat"])
def test_morphology_matches_window_min_max_definitions(operation):
    image = rand(1, 7, 8, 3, seed=9)
    array = image.permute(0, 3, 1, 2).numpy()

    def erode(x):
        return window_reference(x, 1, 1, np.min)

    def dilate(x):
        return window_reference(x, 1, 1, np.max)

    expected = {"erode": lambda: erode(array), "dilate": lambda: dilate(array),
                "open": lambda: dilate(erode(array)), "close": lambda: erode(dilate(array)),
                "gradient": lambda: dilate(array) - erode(array),
                "top_hat": lambda: array - dilate(erode(array)),
                "bottom_hat": lambda: erode(dilate(array)) - array}[operation]()
    got, = mask_nodes.Morphology().process(image, operation, 3)
    np.testing.assert_allclose(got.permute(0, 3, 1, 2).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["missing.png", "../outside.png"])
def test_load_image_mask_refuses_missing_or_escaping_files_before_running(runtime, name):
    outcome, _ = run(runtime, {"1": node("LoadImageMask", image=name, channel="red"),
                               "2": node("MaskPreview", mask=["1", 0])})
    assert outcome.status == "error"
    assert "Invalid image file" in outcome.node_errors["1"]["errors"][0]["details"]
