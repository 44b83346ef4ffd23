"""Our Brownian tree against torchsde's BrownianTree (what k-diffusion and ComfyUI use): equal bits.

The tree is re-derived (one draw per split, a bigger cache), so its equality is a claim to prove on
many seeds (including seeds above 2^63), shapes, dtypes, interval ends, step schedules, query
orders and cache sizes.
"""

from __future__ import annotations

import random
import threading
import warnings

import pytest
import torch
import torchsde

from diffusion.sampling.noise import BrownianTreeNoiseSampler, HalfwayBrownianTree
from diffusion.sampling.schedulers import get_sigmas_exponential, get_sigmas_karras
from tests.support.reference_imports import import_k_diffusion

SHAPES = [(3,), (1, 4, 3, 3), (2, 4, 5, 7), (1, 4, 8, 6)]


def _reference(t0: float, t1: float, shape, dtype, seed: int):
    return torchsde.BrownianTree(torch.tensor(t0), torch.zeros(shape, dtype=dtype), torch.tensor(t1), entropy=seed)


def _query(tree, a: float, b: float) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
        return tree(a, b)


def _sampler_queries(sigmas: torch.Tensor) -> list[tuple[float, float]]:
    """The (low, high) pairs the SDE samplers ask for: whole steps and dpmpp_sde's midpoints."""
    pairs = []
    for hi, lo in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        if lo > 0:
            mid = float(torch.tensor(hi).log().add(torch.tensor(lo).log()).div(2).exp())
            pairs += [(lo, hi), (min(mid, hi), max(mid, hi))]
    return pairs


@pytest.mark.parametrize("trial", range(12))
def test_increments_equal_torchsde_bit_for_bit(trial):
    rng = random.Random(trial)
    seed = rng.randrange(0, 2**64)
    shape = SHAPES[trial % len(SHAPES)]
    dtype = [torch.float32, torch.float32, torch.float64, torch.float16, torch.bfloat16][trial % 5]
    steps = rng.randint(3, 25)
    schedule = get_sigmas_karras if trial % 2 else get_sigmas_exponential
    sigmas = schedule(steps, rng.uniform(0.002, 0.1), rng.uniform(1.0, 160.0)).float()
    t0, t1 = float(sigmas[sigmas > 0].min()), float(sigmas.max())
    pairs = _sampler_queries(sigmas)
    pairs += [tuple(sorted((rng.uniform(t0, t1), rng.uniform(t0, t1)))) for _ in range(8)]
    pairs += [(t0, t1), (t0 - 1e-7, t1 + 1e-7)]  # the whole interval; ends a float32 ulp outside
    if trial % 4 == 1:
        rng.shuffle(pairs)  # the tree does not depend on the order of queries
    reference = _reference(t0, t1, shape, dtype, seed)
    ours = HalfwayBrownianTree(t0, t1, shape, dtype, seed, cache_entries=[None, 1, 5][trial % 3])
    for a, b in pairs:
        expected = _query(reference, a, b)
        got = ours(a, b)
        assert got.dtype == expected.dtype and torch.equal(got, expected), (seed, a, b)


def test_repeated_queries_are_stable_and_never_alias_the_cache():
    ours = HalfwayBrownianTree(0.03, 14.6, (2, 3), torch.float32, 5)
    first = ours(0.5, 2.0)
    first.add_(100.0)  # a caller scribbling on its result must not reach the tree
    assert torch.equal(ours(0.5, 2.0), _query(_reference(0.03, 14.6, (2, 3), torch.float32, 5), 0.5, 2.0))
    assert torch.equal(ours(3.0, 3.0), torch.zeros(2, 3))


def test_bad_queries_are_clear_errors():
    ours = HalfwayBrownianTree(0.03, 14.6, (2,), torch.float32, 5)
    with pytest.raises(ValueError, match="ta <= tb"):
        ours(2.0, 1.0)
    # torchsde itself dies of a RecursionError on an interval below its 1e-6 resolution.
    with pytest.raises(ValueError, match="resolution"):
        ours(1.00000001, 1.00000002)


def test_noise_sampler_matches_k_diffusion_on_a_full_schedule_in_both_directions():
    k = import_k_diffusion().sampling
    sigmas = get_sigmas_karras(12, 0.0292, 14.6146).float()
    x = torch.zeros(1, 4, 6, 6)
    lo, hi = sigmas[sigmas > 0].min(), sigmas.max()
    for seed in (0, 1234, 2**64 - 1):
        for ours, theirs in [
            (BrownianTreeNoiseSampler(x, lo, hi, seed=seed), k.BrownianTreeNoiseSampler(x, lo, hi, seed=seed)),
            (BrownianTreeNoiseSampler(x, hi, lo, seed=seed), k.BrownianTreeNoiseSampler(x, hi, lo, seed=seed)),
        ]:
            for a, b in _sampler_queries(sigmas):
                for s, t in ((b, a), (a, b)):  # samplers ask high-to-low; both orders must agree
                    s, t = torch.tensor(s), torch.tensor(t)
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
                        expected = theirs(s, t)
                    assert torch.equal(ours(s, t), expected), (seed, float(s), float(t))


def test_a_failing_prefetch_surfaces_in_the_sampler_instead_of_hanging(monkeypatch):
    x = torch.zeros(1, 4, 4, 4)
    sampler = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=1)

    def broken(ta: float, tb: float) -> torch.Tensor:
        raise RuntimeError("tree broke")

    monkeypatch.setattr(sampler, "_tree", broken)
    pairs = [(torch.tensor(14.6), torch.tensor(7.0)), (torch.tensor(7.0), torch.tensor(1.0))]
    sampler.prefetch(pairs)
    for a, b in pairs:
        with pytest.raises(RuntimeError, match="tree broke"):
            _within(10, lambda: sampler(a, b))


def _within(seconds: float, call):
    """``call()``'s value or exception, failing the test (rather than hanging it) after ``seconds``."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the test thread below
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_sde_noise_is_prefetched_only_where_the_model_leaves_the_cpu_idle():
    from diffusion.sampling.samplers import common

    sigmas = get_sigmas_karras(6, 0.03, 14.6).float()
    on_cpu = common._brownian(torch.zeros(1, 4, 4, 4), sigmas, {"seed": 1}, None)
    on_accelerator = common._brownian(torch.zeros(1, 4, 4, 4, device="meta"), sigmas, {"seed": 1}, None)
    assert not on_cpu._pending  # on the CPU a prefetch thread only competes with the sampler
    assert len(on_accelerator._pending) == 5  # every step with noise, computed while the model runs
    assert on_accelerator(sigmas[0], sigmas[1]).device.type == "meta"
