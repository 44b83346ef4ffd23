"""Image editing and saving nodes against references: PIL, scipy.ndimage, numpy and the formulas."""

import io
import json

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image, ImageChops

from diffusion import image_ops
from nodes import image_edit as nodes
from tests.support.engine_fixtures import make_runtime, node, run


@pytest.fixture
def runtime(tmp_path):
    return make_runtime(tmp_path)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def to_pil(image):
    return Image.fromarray((image.numpy() * 255).round().astype(np.uint8))


def eight_bit(*shape, seed=0):
    """Random images whose values are exact 8-bit levels, so PIL sees the same numbers."""
    return (rand(*shape, seed=seed) * 255).round() / 255


def test_pad_for_outpaint_grey_border_and_squared_feather_mask():
    image = rand(2, 20, 24, 3)
    padded, mask = nodes.ImagePadForOutpaint().expand_image(image, 8, 0, 16, 0, 5)
    assert padded.shape == (2, 20, 48, 3) and mask.shape == (1, 20, 48)
    assert torch.equal(padded[:, :, 8:32], image)
    assert torch.all(padded[:, :, :8] == 0.5) and torch.all(padded[:, :, 32:] == 0.5)
    expected = np.ones((20, 48), dtype=np.float32)
    for i in range(20):  # the definition: squared distance ramp towards padded sides only
        for j in range(24):
            d = min(20, 20, j, 24 - j)  # top/bottom not padded
            expected[i, 8 + j] = ((5 - d) / 5) ** 2 if d < 5 else 0.0
    np.testing.assert_allclose(mask[0].numpy(), expected, atol=1e-6)


def test_pad_for_outpaint_without_room_for_feathering_keeps_the_image_unmasked():
    _, mask = nodes.ImagePadForOutpaint().expand_image(rand(1, 8, 8, 3), 0, 8, 0, 0, 40)
    assert torch.all(mask[0, :8] == 1) and torch.all(mask[0, 8:] == 0)


def test_scale_to_total_pixels_keeps_aspect_and_area():
    image = rand(1, 30, 60, 3)
    scaled, = nodes.ImageScaleToTotalPixels().upscale(image, "bilinear", 0.01)
    width, height = scaled.shape[2], scaled.shape[1]
    assert abs(width / height - 2.0) < 0.03 and abs(width * height - int(0.01 * 1024 * 1024)) < 150
    reference = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(height, width), mode="bilinear",
                                                antialias=False).movedim(1, -1).clamp(0, 1)
    assert torch.allclose(scaled, reference)


@pytest.mark.parametrize("mode,pil_op", [("multiply", ImageChops.multiply), ("screen", ImageChops.screen),
                                         ("overlay", ImageChops.overlay), ("normal", lambda a, b: b)])
def test_image_blend_modes_match_pil(mode, pil_op):
    a, b = eight_bit(1, 8, 9, 3), eight_bit(1, 8, 9, 3, seed=1)
    got, = nodes.ImageBlend().blend_images(a, b, 1.0, mode)
    reference = np.asarray(pil_op(to_pil(a[0]), to_pil(b[0])), dtype=np.float32) / 255
    np.testing.assert_allclose(got[0].numpy(), reference, atol=1.5 / 255)


def test_image_blend_soft_light_difference_and_factor_follow_the_formulas():
    a, b = rand(1, 5, 6, 3).numpy(), rand(1, 5, 6, 3, seed=2).numpy()
    g = np.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, np.sqrt(a))
    soft = np.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))
    got, = nodes.ImageBlend().blend_images(torch.from_numpy(a), torch.from_numpy(b), 0.3, "soft_light")
    np.testing.assert_allclose(got.numpy(), np.clip(0.7 * a + 0.3 * soft, 0, 1), atol=1e-6)
    got, = nodes.ImageBlend().blend_images(torch.from_numpy(a), torch.from_numpy(b), 1.0, "difference")
    np.testing.assert_allclose(got.numpy(), np.clip(a - b, 0, 1), atol=1e-6)


def test_image_blend_resizes_the_second_image():
    got, = nodes.ImageBlend().blend_images(rand(2, 8, 8, 3), rand(1, 16, 32, 3), 0.5, "normal")
    assert got.shape == (2, 8, 8, 3)


def comfy_gaussian(size, sigma):
    axis = np.linspace(-1, 1, size)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def correlate_channels(image, kernel):
    return np.stack([scipy.ndimage.correlate(image[..., c], kernel, mode="mirror")
                     for c in range(image.shape[-1])], axis=-1)


def test_image_blur_is_a_mirrored_gaussian_correlation():
    image = rand(1, 12, 10, 3)
    got, = nodes.ImageBlur().blur(image, 3, 0.7)
    reference = correlate_channels(image[0].double().numpy(), comfy_gaussian(7, 0.7))
    np.testing.assert_allclose(got[0].numpy(), reference, atol=1e-5)


def test_image_sharpen_is_an_unsharp_kernel_correlation():
    image = rand(1, 12, 10, 3, seed=4)
    got, = nodes.ImageSharpen().sharpen(image, 2, 1.5, 0.4)
    kernel = comfy_gaussian(5, 1.5) * -(0.4 * 10)
    kernel[2, 2] += 1.0 - kernel.sum()
    reference = np.clip(correlate_channels(image[0].double().numpy(), kernel), 0, 1)
    np.testing.assert_allclose(got[0].numpy(), reference, atol=1e-5)


@pytest.mark.parametrize("dither", ["none", "floyd-steinberg"])
def test_image_quantize_matches_pil(dither):
    image = eight_bit(1, 16, 16, 3, seed=7)
    got, = nodes.ImageQuantize().quantize(image, 5, dither)
    picture = to_pil(image[0])
    method = Image.Dither.NONE if dither == "none" else Image.Dither.FLOYDSTEINBERG
    reference = picture.quantize(palette=picture.quantize(colors=5), dither=method).convert("RGB")
    np.testing.assert_allclose(got[0].numpy(), np.asarray(reference, dtype=np.float32) / 255, atol=1e-6)


def test_image_quantize_bayer_uses_only_palette_colours():
    image = eight_bit(1, 16, 16, 3, seed=8)
    got, = nodes.ImageQuantize().quantize(image, 4, "bayer-4")
    palette = to_pil(image[0]).quantize(colors=4).convert("RGB")
    allowed = {tuple(c) for c in np.asarray(palette).reshape(-1, 3)}
    used = {tuple(c) for c in (got[0].numpy() * 255).round().astype(int).reshape(-1, 3)}
    assert used <= allowed and len(used) > 1


def test_bayer_matrix_is_the_classic_threshold_map():
    assert np.allclose(image_ops.bayer_matrix(2) * 4 + 2 - 0.5, [[0, 2], [3, 1]])
    m4 = image_ops.bayer_matrix(4) * 16 + 8 - 0.5
    assert sorted(m4.ravel()) == list(range(16)) and m4[0, 0] == 0 and m4[0, 1] == 8


def test_image_composite_masked_against_numpy_blend():
    destination, source = rand(1, 10, 12, 3), rand(1, 6, 6, 3, seed=1)
    mask = rand(1, 6, 6, seed=2)
    got, = nodes.ImageCompositeMasked().composite(destination, source, 9, 7, False, mask)
    expected = destination.numpy().copy()
    m = mask.numpy()[0, :3, :3, None]
    expected[0, 7:10, 9:12] = m * source.numpy()[0, :3, :3] + (1 - m) * expected[0, 7:10, 9:12]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    assert torch.equal(nodes.ImageCompositeMasked().composite(destination, source, 2, 1, False)[0][0, 1:7, 2:8],
                       source[0])


def test_batch_nodes():
    images = rand(5, 2, 3, 3)
    assert torch.equal(nodes.ImageFromBatch().frombatch(images, 3, 4)[0], images[3:])
    assert torch.equal(nodes.ImageFromBatch().frombatch(images, 9, 1)[0], images[4:])
    assert torch.equal(nodes.RepeatImageBatch().repeat(images[:2], 3)[0], images[:2].repeat(3, 1, 1, 1))
    out, = nodes.RebatchImages().rebatch([images[:2], images[2:]], [2])
    assert [b.shape[0] for b in out] == [2, 2, 1] and torch.equal(torch.cat(out), images)
    assert nodes.GetImageSize().get_size(images) == (3, 2, 5)


def test_rebatch_images_runs_as_a_list_node(runtime):
    prompt = {"1": node("EmptyImage", width=4, height=4, batch_size=5, color=0),
              "2": node("RebatchImages", images=["1", 0], batch_size=2),
              "3": node("PreviewImage", images=["2", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok, outcome.error
    assert len(outcome.outputs["3"]["images"]) == 5  # three batches, every image previewed


def test_rotate_and_flip_match_numpy():
    image = rand(2, 3, 5, 3)
    array = image.numpy()
    for index, rotation in enumerate(["none", "90 degrees", "180 degrees", "270 degrees"]):
        expected = np.rot90(array, k=-index, axes=(1, 2))  # clockwise
        np.testing.assert_array_equal(nodes.ImageRotate().rotate(image, rotation)[0].numpy(), expected)
    np.testing.assert_array_equal(nodes.ImageFlip().flip(image, "x-axis: vertically")[0].numpy(), array[:, ::-1])
    np.testing.assert_array_equal(nodes.ImageFlip().flip(image, "y-axis: horizontally")[0].numpy(),
                                  array[:, :, ::-1])


def test_stitch_concatenates_with_an_even_spacer():
    a, b = rand(1, 4, 5, 3), rand(1, 4, 3, 3, seed=1)
    got, = nodes.ImageStitch().stitch(a, "left", False, 1, "red", b)
    spacer = np.zeros((1, 4, 2, 3), dtype=np.float32)
    spacer[..., 0] = 1
    np.testing.assert_array_equal(got.numpy(), np.concatenate([b.numpy(), spacer, a.numpy()], axis=2))
    assert torch.equal(nodes.ImageStitch().stitch(a, "right", True, 0, "white")[0], a)


def test_stitch_without_matching_centres_the_smaller_image():
    a, b = rand(1, 4, 5, 3), rand(2, 2, 3, 3, seed=1)
    got, = nodes.ImageStitch().stitch(a, "down", False, 0, "white", b)
    b_padded = np.ones((2, 2, 5, 3), dtype=np.float32)
    b_padded[:, :, 1:4] = b.numpy()
    expected = np.concatenate([np.concatenate([a.numpy()] * 2), b_padded], axis=1)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_stitch_matching_resizes_with_lanczos():
    a, b = rand(1, 8, 5, 3), eight_bit(1, 4, 6, 3, seed=1)
    got, = nodes.ImageStitch().stitch(a, "right", True, 0, "white", b)
    resized = np.asarray(to_pil(b[0]).resize((12, 8), Image.LANCZOS), dtype=np.float32) / 255
    np.testing.assert_allclose(got[0, :, 5:].numpy(), resized, atol=1e-6)


def test_save_animated_png_and_webp(runtime):
    prompt = {"a": node("EmptyImage", width=6, height=4, batch_size=1, color=0x336699),
              "b": node("EmptyImage", width=6, height=4, batch_size=1, color=0xFFFFFF),
              "ab": node("ImageBatch", image1=["a", 0], image2=["b", 0]),
              "1": node("ImageBatch", image1=["ab", 0], image2=["a", 0]),  # distinct frames: a, b, a
              "2": node("SaveAnimatedPNG", images=["1", 0], filename_prefix="anim/a", fps=4.0, compress_level=4),
              "3": node("SaveAnimatedWEBP", images=["1", 0], filename_prefix="anim/w", fps=10.0, lossless=True,
                        quality=80, method="fastest")}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok, outcome.error
    assert outcome.outputs["2"]["images"] == [{"filename": "a_00001_.png", "subfolder": "anim", "type": "output"}]
    assert list(outcome.outputs["2"]["animated"]) == [True]
    folder = runtime.paths.output_directory / "anim"
    with Image.open(folder / "a_00001_.png") as png:
        assert png.n_frames == 3 and png.info["duration"] == 250
        assert png.convert("RGB").getpixel((0, 0)) == (0x33, 0x66, 0x99)
    raw = (folder / "a_00001_.png").read_bytes()
    assert b"comfprompt\x00" in raw  # ComfyUI's private chunk: keyword NUL JSON
    with Image.open(folder / outcome.outputs["3"]["images"][0]["filename"]) as webp:
        webp.seek(1)  # PIL reads a WebP frame's duration when it decodes that frame
        webp.load()
        assert webp.n_frames == 3 and webp.info["duration"] == 100
        model = webp.getexif()[0x0110]
        assert json.loads(model.split(":", 1)[1])["a"]["class_type"] == "EmptyImage"


def test_save_image_websocket_sends_full_png_previews(runtime):
    prompt = {"1": node("EmptyImage", width=7, height=5, batch_size=2, color=0xFF8000),
              "ws": node("SaveImageWebsocket", images=["1", 0])}
    outcome, listener = run(runtime, prompt)
    assert outcome.ok, outcome.error
    previews = [p for p in listener.previews if p[1] == "ws"]
    assert len(previews) == 2
    for _, _, image_format, data in previews:
        assert image_format == "PNG"
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "PNG" and picture.size == (7, 5)
            assert picture.getpixel((0, 0)) == (255, 128, 0)
    again, listener = run(runtime, prompt)  # IS_CHANGED: never served from the cache
    assert again.run_report["ws"]["state"] == "ran"


def test_scale_to_max_dimension_and_resize_and_pad():
    image = rand(1, 30, 60, 3)
    scaled, = nodes.ImageScaleToMaxDimension().upscale(image, "area", 20)
    assert scaled.shape == (1, 10, 20, 3)
    assert torch.allclose(scaled, torch.nn.functional.interpolate(image.movedim(-1, 1), size=(10, 20), mode="area")
                          .movedim(1, -1))
    padded, = nodes.ResizeAndPadImage().resize_and_pad(image, 40, 40, "black", "area")
    assert padded.shape == (1, 40, 40, 3)
    assert torch.all(padded[:, :10] == 0) and torch.all(padded[:, 30:] == 0)  # 40x20 centred vertically
    expected = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(20, 40), mode="area").movedim(1, -1)
    assert torch.allclose(padded[:, 10:30], expected)


def test_image_add_noise_is_seeded_cpu_gaussian_noise():
    image = rand(1, 4, 5, 3)
    noisy, = nodes.ImageAddNoise().repeat(image, 123, 0.25)
    expected = (image + 0.25 * torch.randn(image.shape, generator=torch.manual_seed(123))).clamp(0, 1)
    assert torch.equal(noisy, expected)
