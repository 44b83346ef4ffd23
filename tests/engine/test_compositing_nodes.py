"""Alpha compositing nodes against Pillow's alpha_composite and the Porter-Duff fraction table."""

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.compositing import JoinImageWithAlpha, PorterDuffImageComposite, SplitImageWithAlpha


def rand(*shape, seed=0):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 255).round() / 255


def test_source_over_matches_pillow_alpha_composite():
    src, dst = rand(1, 6, 7, 3), rand(1, 6, 7, 3, seed=1)
    src_mask, dst_mask = rand(1, 6, 7, seed=2), rand(1, 6, 7, seed=3)
    image, mask = PorterDuffImageComposite().composite(src, src_mask, dst, dst_mask, "SRC_OVER")

    def rgba(colour, m):
        return Image.fromarray((torch.cat([colour[0], (1 - m[0])[..., None]], -1).numpy() * 255).round()
                               .astype(np.uint8), "RGBA")

    reference = np.asarray(Image.alpha_composite(rgba(dst, dst_mask), rgba(src, src_mask)), dtype=np.float32) / 255
    np.testing.assert_allclose(1 - mask[0].numpy(), reference[..., 3], atol=1.5 / 255)
    visible = reference[..., 3] > 0.05  # colour is undefined (and rounded hard) where nearly transparent
    np.testing.assert_allclose(image[0].numpy()[visible], reference[..., :3][visible], atol=3 / 255)


FRACTIONS = {  # Porter & Duff (1984): (Fa, Fb)
    "CLEAR": lambda s, d: (0, 0), "SRC": lambda s, d: (1, 0), "DST": lambda s, d: (0, 1),
    "SRC_OVER": lambda s, d: (1, 1 - s), "DST_OVER": lambda s, d: (1 - d, 1), "SRC_IN": lambda s, d: (d, 0),
    "DST_IN": lambda s, d: (0, s), "SRC_OUT": lambda s, d: (1 - d, 0), "DST_OUT": lambda s, d: (0, 1 - s),
    "SRC_ATOP": lambda s, d: (d, 1 - s), "DST_ATOP": lambda s, d: (1 - d, s), "XOR": lambda s, d: (1 - d, 1 - s),
}


@pytest.mark.parametrize("mode", sorted(FRACTIONS))
def test_porter_duff_operators_follow_the_fraction_table(mode):
    src, dst = rand(1, 4, 5, 3).numpy(), rand(1, 4, 5, 3, seed=1).numpy()
    a_s, a_d = rand(1, 4, 5, seed=2).numpy()[..., None], rand(1, 4, 5, seed=3).numpy()[..., None]
    fa, fb = FRACTIONS[mode](a_s, a_d)
    alpha = fa * a_s + fb * a_d + np.zeros_like(a_s)
    colour = fa * src * a_s + fb * dst * a_d
    straight = np.where(alpha > 1e-5, colour / np.maximum(alpha, 1e-5), 0).clip(0, 1)
    image, mask = PorterDuffImageComposite().composite(torch.from_numpy(src), torch.from_numpy(1 - a_s[..., 0]),
                                                       torch.from_numpy(dst), torch.from_numpy(1 - a_d[..., 0]), mode)
    np.testing.assert_allclose(mask.numpy(), 1 - alpha[..., 0], atol=1e-6)
    np.testing.assert_allclose(image.numpy(), straight, atol=1e-5)


def test_split_and_join_alpha_round_trip():
    rgba = rand(2, 3, 4, 4)
    rgb, mask = SplitImageWithAlpha().split(rgba)
    assert torch.equal(rgb, rgba[..., :3]) and torch.allclose(mask, 1 - rgba[..., 3])
    joined, = JoinImageWithAlpha().join(rgb, mask)
    assert torch.allclose(joined, rgba, atol=1e-6)
    assert torch.equal(SplitImageWithAlpha().split(rgb)[1], torch.zeros(2, 3, 4))  # opaque without alpha
