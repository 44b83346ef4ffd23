"""Latent editing nodes against references: numpy/torch arithmetic, scipy.ndimage, the formulas."""

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from nodes import latent_edit as nodes


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def latent(samples, **extra):
    return {"samples": samples, **extra}


def test_latent_composite_pastes_with_feathered_inner_edges():
    to, source = rand(1, 4, 12, 12), rand(1, 4, 6, 5, seed=1)
    got, = nodes.LatentComposite().composite(latent(to), latent(source), 16, 24, 16)  # cells (2, 3), feather 2
    mask = np.ones((6, 5), dtype=np.float32)
    for t in range(2):  # ComfyUI's loop: only sides that are inside the destination fade
        rate = (t + 1) / 2
        mask[t, :] *= rate        # top: y != 0
        mask[5 - t, :] *= rate    # bottom: 3 + 6 < 12
        mask[:, t] *= rate        # left: x != 0
        mask[:, 4 - t] *= rate    # right: 2 + 5 < 12
    expected = to.numpy().copy()
    region = expected[..., 3:9, 2:7]
    expected[..., 3:9, 2:7] = source.numpy() * mask + region * (1 - mask)
    np.testing.assert_allclose(got["samples"].numpy(), expected, atol=1e-6)
    plain, = nodes.LatentComposite().composite(latent(to), latent(source), 64, 64, 0)  # overhangs: cut off
    assert torch.equal(plain["samples"][..., 8:, 8:], source[..., :4, :4])
    assert torch.equal(plain["samples"][..., :8, :], to[..., :8, :])


def test_latent_composite_masked_blends_through_the_mask():
    destination, source = rand(2, 4, 8, 8), rand(1, 4, 4, 4, seed=1)
    mask = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(3))
    got, = nodes.LatentCompositeMasked().composite(latent(destination, noise_mask=torch.ones(1)),
                                                    latent(source), 8, 16, False, mask)
    expected = destination.clone()
    expected[..., 2:6, 1:5] = mask * source + (1 - mask) * destination[..., 2:6, 1:5]
    assert torch.allclose(got["samples"], expected, atol=1e-6)
    assert "noise_mask" in got  # the destination's other keys travel along
    resized, = nodes.LatentCompositeMasked().composite(latent(destination), latent(source), 0, 0, True)
    expected = F.interpolate(source, size=(8, 8), mode="bilinear").expand(2, -1, -1, -1)
    assert torch.allclose(resized["samples"], expected, atol=1e-6)


def test_latent_blend_and_arithmetic():
    a, b = rand(2, 4, 6, 6), rand(2, 4, 6, 6, seed=1)
    assert torch.allclose(nodes.LatentBlend().blend(latent(a), latent(b), 0.3)[0]["samples"], a * 0.3 + b * 0.7)
    assert torch.equal(nodes.LatentAdd().op(latent(a), latent(b))[0]["samples"], a + b)
    assert torch.equal(nodes.LatentSubtract().op(latent(a), latent(b))[0]["samples"], a - b)
    assert torch.equal(nodes.LatentMultiply().op(latent(a), -1.5)[0]["samples"], a * -1.5)
    small = rand(1, 4, 3, 3, seed=2)  # resized bilinearly to samples1 and repeated over the batch
    expected = a + F.interpolate(small, size=(6, 6), mode="bilinear", align_corners=False)
    assert torch.allclose(nodes.LatentAdd().op(latent(a), latent(small))[0]["samples"], expected, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 2])
def test_latent_interpolate_mixes_directions_and_lengths(batch):
    a, b = rand(batch, 4, 5, 5).numpy(), rand(batch, 4, 5, 5, seed=1).numpy()
    ratio = 0.3
    na, nb = np.linalg.norm(a, axis=1, keepdims=True), np.linalg.norm(b, axis=1, keepdims=True)
    t = a / na * ratio + b / nb * (1 - ratio)
    expected = t / np.linalg.norm(t, axis=1, keepdims=True) * (na * ratio + nb * (1 - ratio))
    got, = nodes.LatentInterpolate().op(latent(torch.from_numpy(a)), latent(torch.from_numpy(b)), ratio)
    np.testing.assert_allclose(got["samples"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_rotate_flip_crop_match_numpy():
    samples = rand(1, 4, 10, 12)
    array = samples.numpy()
    for k, rotation in enumerate(["none", "90 degrees", "180 degrees", "270 degrees"]):
        got = nodes.LatentRotate().rotate(latent(samples), rotation)[0]["samples"].numpy()
        np.testing.assert_array_equal(got, np.rot90(array, k=-k, axes=(2, 3)))
    np.testing.assert_array_equal(nodes.LatentFlip().flip(latent(samples), "x-axis: vertically")[0]["samples"],
                                  array[:, :, ::-1])
    np.testing.assert_array_equal(nodes.LatentFlip().flip(latent(samples), "y-axis: horizontally")[0]["samples"],
                                  array[:, :, :, ::-1])
    got = nodes.LatentCrop().crop(latent(samples), 64, 32, 16, 8)[0]["samples"]
    assert torch.equal(got, samples[..., 1:5, 2:10])
    got = nodes.LatentCrop().crop(latent(samples), 64, 64, 512, 512)[0]["samples"]  # start clamped 8 cells in
    assert torch.equal(got, samples[..., 2:10, 4:12])


def test_batch_and_seed_behavior_track_batch_indices():
    a, b = rand(2, 4, 4, 4), rand(1, 4, 4, 4, seed=1)
    got, = nodes.LatentBatch().op(latent(a), latent(b, batch_index=[7]))
    assert torch.equal(got["samples"], torch.cat([a, b])) and got["batch_index"] == [0, 1, 7]
    fixed, = nodes.LatentBatchSeedBehavior().op(latent(a, batch_index=[5, 6]), "fixed")
    assert fixed["batch_index"] == [5, 5]
    random, = nodes.LatentBatchSeedBehavior().op(latent(a, batch_index=[5, 6]), "random")
    assert "batch_index" not in random


def test_rebatch_latents_regroups_items_and_masks():
    first, second, other = rand(3, 4, 2, 2), rand(2, 4, 2, 2, seed=1), rand(1, 4, 3, 3, seed=2)
    mask = torch.zeros(1, 1, 16, 16)
    out, = nodes.RebatchLatents().rebatch([latent(first), latent(second, noise_mask=mask), latent(other)], [2])
    assert [o["samples"].shape[0] for o in out] == [2, 2, 1, 1]
    assert torch.equal(torch.cat([o["samples"] for o in out[:3]]), torch.cat([first, second]))
    assert [o["batch_index"] for o in out] == [[0, 1], [2, 3], [4], [5]]
    assert "noise_mask" not in out[0] and "noise_mask" not in out[3]  # all-ones masks are dropped
    assert out[1]["noise_mask"][:, 0].flatten(1).mean(1).tolist() == [1.0, 0.0]  # item 3 kept its mask


def test_tonemap_reinhard_operation_formula():
    samples = rand(2, 4, 6, 6) * 3
    operation, = nodes.LatentOperationTonemapReinhard().op(1.5)
    got, = nodes.LatentApplyOperation().op(latent(samples), operation)
    x = samples.double().numpy()
    length = np.linalg.norm(x, axis=1, keepdims=True) + 1e-10
    white = (length.mean(axis=(1, 2, 3), keepdims=True) + 5 * length.std(axis=(1, 2, 3), ddof=1, keepdims=True)) * 1.5
    expected = x / length * (length / white) / (length / white + 1) * white
    np.testing.assert_allclose(got["samples"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_sharpen_operation_sharpens_directions_and_keeps_lengths():
    samples = rand(1, 4, 9, 9)
    operation, = nodes.LatentOperationSharpen().op(2, 1.0, 0.2)
    got = operation(latent=samples).double().numpy()
    x = samples.double().numpy()
    length = np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
    axis = np.linspace(-1, 1, 5)
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    kernel = np.exp(-(gx * gx + gy * gy) / 2.0)
    kernel = kernel / kernel.sum() * -(0.2 * 10)
    kernel[2, 2] += 1 - kernel.sum()
    unit = x / length
    sharpened = np.stack([scipy.ndimage.correlate(unit[0, c], kernel, mode="mirror") for c in range(4)])[None]
    np.testing.assert_allclose(got, length * sharpened, rtol=1e-5, atol=1e-5)


def test_concat_and_cut_along_latent_axes():
    a, b = rand(2, 4, 3, 5), rand(1, 4, 3, 2, seed=1)
    got, = nodes.LatentConcat().op(latent(a), latent(b), "-x")
    assert torch.equal(got["samples"], torch.cat([b.repeat(2, 1, 1, 1), a], dim=-1))
    assert torch.equal(nodes.LatentCut().op(latent(a), "x", 1, 3)[0]["samples"], a[..., 1:4])
    assert torch.equal(nodes.LatentCut().op(latent(a), "y", -2, 5)[0]["samples"], a[..., 1:3, :])
    assert torch.equal(nodes.LatentCut().op(latent(a), "x", 9, 2)[0]["samples"], a[..., 4:5])
