"""Custom-sampling schedulers and sigma tools against k-diffusion, the papers' formulas and
ComfyUI's documented slicing rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from diffusion.sampling import schedulers
from diffusion.sampling.model_sampling import scaled_linear_sigmas
from nodes import schedulers as nodes
from tests.sampling.fakes import FakeModelHandle
from tests.support.reference_imports import import_k_diffusion



def K():  # noqa: N802 - imported on first use: its torchvision stub must not precede other modules' imports
    return import_k_diffusion().sampling
SD_MAX, SD_MIN = 14.614642, 0.0291675


@pytest.mark.parametrize("rho", [0.5, 1.0, 2.5])
def test_polyexponential_scheduler_matches_k_diffusion(rho):
    (ours,) = nodes.PolyexponentialScheduler().get_sigmas(12, SD_MAX, SD_MIN, rho)
    theirs = K().get_sigmas_polyexponential(12, SD_MIN, SD_MAX, rho)
    assert ours.shape == (13,) and (ours - theirs).abs().max() <= 1e-5


def test_vp_scheduler_matches_k_diffusion():
    (ours,) = nodes.VPScheduler().get_sigmas(15, 19.9, 0.1, 0.001)
    theirs = K().get_sigmas_vp(15, 19.9, 0.1, 0.001)
    assert (ours - theirs).abs().max() <= 1e-5


def test_laplace_scheduler_follows_the_laplace_quantile_formula():
    mu, beta, n = 0.3, 0.7, 11
    u = np.linspace(0, 1, n)
    # Quantile function of Laplace(μ, β) evaluated at u, with ComfyUI's 1e-5 guard against log 0.
    expected = np.exp(mu - beta * np.sign(0.5 - u) * np.log(1 - 2 * np.abs(0.5 - u) + 1e-5))
    expected = np.clip(expected, SD_MIN, SD_MAX)
    (ours,) = nodes.LaplaceScheduler().get_sigmas(n, SD_MAX, SD_MIN, mu, beta)
    assert len(ours) == n  # ComfyUI appends no final zero here
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5)


def test_beta_sampling_scheduler_uses_the_given_alpha_and_beta():
    (ours,) = nodes.BetaSamplingScheduler().get_sigmas(FakeModelHandle(), 8, 0.4, 0.9)
    sigmas = scaled_linear_sigmas().float()
    t = np.rint(stats.beta.ppf(1 - np.linspace(0, 1, 8, endpoint=False), 0.4, 0.9) * 999).astype(int)
    t = [int(v) for i, v in enumerate(t) if i == 0 or v != t[i - 1]]
    assert torch.equal(ours, torch.tensor([float(sigmas[i]) for i in t] + [0.0]))


def _loglinear(levels, num):
    """The Align-Your-Steps how-to's resampling, written with scipy: linear interpolation of
    log σ over a uniform grid."""
    from scipy.interpolate import interp1d

    f = interp1d(np.linspace(0, 1, len(levels)), np.log(np.asarray(levels[::-1], dtype=np.float64)))
    return np.exp(f(np.linspace(0, 1, num)))[::-1]


def test_align_your_steps_gives_the_published_ten_step_schedule():
    (ours,) = nodes.AlignYourStepsScheduler().get_sigmas("SD1", 10, 1.0)
    published = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
                 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0]
    np.testing.assert_allclose(ours.numpy(), published, rtol=1e-6)


@pytest.mark.parametrize("model_type", ["SD1", "SDXL", "SVD"])
def test_align_your_steps_resamples_other_step_counts_log_linearly(model_type):
    (ours,) = nodes.AlignYourStepsScheduler().get_sigmas(model_type, 16, 1.0)
    expected = _loglinear(list(schedulers.AYS_NOISE_LEVELS[model_type]), 17)
    expected[-1] = 0.0
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("node", [nodes.AlignYourStepsScheduler, nodes.GITSScheduler])
def test_published_schedules_keep_round_steps_times_denoise_steps(node):
    first = "SDXL" if node is nodes.AlignYourStepsScheduler else 1.2
    (full,) = node().get_sigmas(first, 10, 1.0)
    (part,) = node().get_sigmas(first, 10, 0.45)
    assert len(part) == round(10 * 0.45) + 1
    assert torch.equal(part[:-1], full[-len(part):-1]) and part[-1] == 0
    (none,) = node().get_sigmas(first, 10, 0.0)
    assert len(none) == 0


def test_gits_scheduler_reads_the_table_and_resamples_beyond_twenty_steps():
    table = schedulers._gits_table()
    (ten,) = nodes.GITSScheduler().get_sigmas(1.2, 10, 1.0)
    row = table["1.20"][10 - 2]
    assert len(ten) == 11 and ten[0] == pytest.approx(14.61464119) and ten[-1] == 0
    np.testing.assert_allclose(ten[:-1].numpy(), row[:-1], rtol=1e-7)
    (many,) = nodes.GITSScheduler().get_sigmas(0.85, 30, 1.0)
    expected = _loglinear(table["0.85"][-1], 31)
    expected[-1] = 0
    np.testing.assert_allclose(many.numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="coeff"):
        nodes.GITSScheduler().get_sigmas(0.82, 10, 1.0)


# --- sigma tools -----------------------------------------------------------------------------------

SIGMAS = torch.tensor([10.0, 6.0, 3.0, 1.0, 0.5, 0.0])


def test_split_sigmas_shares_the_boundary_sigma():
    high, low = nodes.SplitSigmas().get_sigmas(SIGMAS, 2)
    assert high.tolist() == [10.0, 6.0, 3.0] and low.tolist() == [3.0, 1.0, 0.5, 0.0]


def test_split_sigmas_denoise_gives_the_low_part_round_steps_times_denoise():
    high, low = nodes.SplitSigmasDenoise().get_sigmas(SIGMAS, 0.6)
    assert high.tolist() == [10.0, 6.0, 3.0] and low.tolist() == [3.0, 1.0, 0.5, 0.0]
    high, low = nodes.SplitSigmasDenoise().get_sigmas(SIGMAS, 1.0)
    assert high.tolist() == [10.0] and low.tolist() == SIGMAS.tolist()
    high, low = nodes.SplitSigmasDenoise().get_sigmas(SIGMAS, 0.0)  # ComfyUI's slicing: [:-0] is empty
    assert high.tolist() == [] and low.tolist() == [0.0]


def test_flip_sigmas_reverses_and_lifts_a_leading_zero():
    (flipped,) = nodes.FlipSigmas().get_sigmas(SIGMAS)
    assert flipped.tolist() == pytest.approx([0.0001, 0.5, 1.0, 3.0, 6.0, 10.0])
    assert SIGMAS[-1] == 0  # input untouched


def test_set_first_sigma_replaces_only_the_first_entry():
    (out,) = nodes.SetFirstSigma().set_first_sigma(SIGMAS, 136.0)
    assert out.tolist() == [136.0] + SIGMAS.tolist()[1:] and SIGMAS[0] == 10.0


@pytest.mark.parametrize("spacing,shape", [
    ("linear", lambda u: u),
    ("cosine", lambda u: math.sin(u * math.pi / 2)),
    ("sine", lambda u: 1 - math.cos(u * math.pi / 2)),
])
def test_extend_intermediate_sigmas_inserts_points_inside_the_chosen_steps(spacing, shape):
    (out,) = nodes.ExtendIntermediateSigmas().extend(SIGMAS, 3, 6.0, 1.0, spacing)
    expected = []
    for a, b in zip(SIGMAS[:-1].tolist(), SIGMAS[1:].tolist()):
        expected.append(a)
        if 1.0 <= a <= 6.0:
            expected += [a + shape(k / 3) * (b - a) for k in (1, 2)]
    expected.append(0.0)
    assert out.tolist() == pytest.approx(expected, rel=1e-6)


def test_extend_intermediate_sigmas_without_upper_bound_extends_from_the_top():
    (out,) = nodes.ExtendIntermediateSigmas().extend(SIGMAS, 2, -1.0, 12.0, "linear")
    assert out.tolist() == SIGMAS.tolist()  # no step starts at or above 12
    (out,) = nodes.ExtendIntermediateSigmas().extend(SIGMAS, 2, -1.0, 5.0, "linear")
    assert out.tolist() == [10.0, 8.0, 6.0, 4.5, 3.0, 1.0, 0.5, 0.0]


def test_sampling_percent_to_sigma_matches_k_diffusion_timesteps():
    schedule = import_k_diffusion().external.DiscreteSchedule(scaled_linear_sigmas().float(), quantize=False)
    node = nodes.SamplingPercentToSigma()
    (mid,) = node.get_sigma(FakeModelHandle(), 0.3, False)
    assert mid == pytest.approx(float(schedule.t_to_sigma(torch.tensor(0.7 * 999))), rel=1e-5)
    assert node.get_sigma(FakeModelHandle(), 0.0, False) == (999999999.9,)
    assert node.get_sigma(FakeModelHandle(), 1.0, False) == (0.0,)
    table = scaled_linear_sigmas()
    assert node.get_sigma(FakeModelHandle(), 0.0, True)[0] == pytest.approx(float(table[-1]), rel=1e-6)
    assert node.get_sigma(FakeModelHandle(), 1.0, True)[0] == pytest.approx(float(table[0]), rel=1e-6)
