"""Our Brownian tree against torchsde's BrownianTree (what k-diffusion and ComfyUI use): equal bits.

The tree is re-derived for speed, so its equality is a claim to prove on many seeds (including
seeds above 2^63), shapes, dtypes, interval ends, step schedules, query orders and cache sizes.
"""

from __future__ import annotations

import random
import threading
import warnings

import numpy as np
import pytest
import torch
import torchsde

from diffusion.sampling.noise import BrownianTreeNoiseSampler, HalfwayBrownianTree, _GaussianDraws, _SpawnSeeds
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


@pytest.mark.parametrize("seed, shape, dtype", [(0, (1, 4, 8, 6), torch.float32), (2**64 - 1, (2, 4, 5, 7), torch.float16),
                                                (987654321, (1, 4, 64, 64), torch.float32), (42, (3,), torch.float64)])
def test_drawing_on_worker_threads_gives_the_same_bits_as_drawing_in_order(seed, shape, dtype):
    sigmas = get_sigmas_karras(20, 0.0292, 14.6146).float()
    t0, t1 = float(sigmas[sigmas > 0].min()), float(sigmas.max())
    in_order = HalfwayBrownianTree(t0, t1, shape, dtype, seed, draw_threads=0)
    parallel = [HalfwayBrownianTree(t0, t1, shape, dtype, seed, draw_threads=n) for n in (1, 2, 4)]
    assert [tree.draw_threads for tree in parallel] == [1, 2, 4]
    for a, b in _sampler_queries(sigmas):
        expected = in_order(a, b)
        for tree in parallel:
            assert torch.equal(tree(a, b), expected), (seed, shape, tree.draw_threads, a, b)
    for tree in parallel:
        tree.close()


def test_drawing_on_worker_threads_equals_torchsde_with_a_tiny_cache():
    sigmas = get_sigmas_exponential(9, 0.03, 14.6).float()
    t0, t1 = float(sigmas[sigmas > 0].min()), float(sigmas.max())
    reference = _reference(t0, t1, (1, 4, 8, 6), torch.float32, 77)
    ours = HalfwayBrownianTree(t0, t1, (1, 4, 8, 6), torch.float32, 77, cache_entries=3, draw_threads=2)
    for a, b in _sampler_queries(sigmas) + [(t0, t1)]:
        assert torch.equal(ours(a, b), _query(reference, a, b)), (a, b)
    ours.close()


def test_a_failing_draw_worker_raises_in_the_caller_instead_of_hanging():
    draws = _GaussianDraws((4, 4), torch.float32, threads=1)
    started = threading.Event()

    def broken(chunk):
        started.set()
        raise RuntimeError("worker out of memory")

    draws._draw_on_worker = broken
    mine, handed = draws.start([(3, 1.0), (4, 1.0)])  # the caller keeps the first, a worker gets the second
    assert torch.equal(mine(), torch.randn(4, 4, generator=torch.Generator().manual_seed(3)))
    assert started.wait(10)  # the worker has begun, so the caller cannot take the draw back
    with pytest.raises(RuntimeError, match="worker out of memory"):
        _within(10, handed)
    draws.close()


def test_split_seeds_equal_numpy_seed_sequence():
    rng = random.Random(5)
    entropies = [0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 2**700 + 3, 2**800 + 1] + [rng.randrange(2**64) for _ in range(8)]
    keys = [(0, 0), (1, 1), (2**31, 3), (2**32, 40), (2**100 + 5, 101), (0, 900)]
    keys += [(rng.randrange(2**depth), depth) for depth in rng.sample(range(1, 40), 8)]
    for entropy in entropies:
        seeds = _SpawnSeeds(entropy, 24)
        for key, depth in keys:
            state = np.random.SeedSequence(entropy=entropy, spawn_key=(key, depth), pool_size=24).generate_state(4)
            assert seeds(key, depth) == int(state[0]), (entropy, key, depth)


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
    from diffusion.sampling import samplers

    sigmas = get_sigmas_karras(6, 0.03, 14.6).float()
    on_cpu = samplers._brownian(torch.zeros(1, 4, 4, 4), sigmas, {"seed": 1}, None)
    on_accelerator = samplers._brownian(torch.zeros(1, 4, 4, 4, device="meta"), sigmas, {"seed": 1}, None)
    assert not on_cpu._pending  # on the CPU a prefetch thread only competes with the sampler
    assert len(on_accelerator._pending) == 5  # every step with noise, computed while the model runs
    assert on_accelerator(sigmas[0], sigmas[1]).device.type == "meta"
