"""Seeded noise: the initial latent noise and the extra noise ancestral/SDE samplers inject.

Everything is drawn on the CPU from a seeded generator and then moved, so a seed gives the same
image on every device (and the same as ComfyUI's CPU-drawn initial noise).
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import torch

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def cpu_generator(seed: int) -> torch.Generator:
    """A CPU generator for any seed in 0..2^64-1 (torch accepts the full unsigned range)."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
    return torch.Generator("cpu").manual_seed(int(seed))


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """Initial noise for ``latent`` ([B,C,h,w]) from ``seed``.

    With ``batch_index`` (set by LatentFromBatch and friends) the noise of batch entry ``i`` is
    the ``i``-th per-item draw of the full batch, so a picked entry samples to the same image it
    had inside its batch.
    """
    generator = cpu_generator(seed)
    if batch_index is None:
        return torch.randn(latent.shape, dtype=latent.dtype, generator=generator, device="cpu")
    indices = [int(i) for i in batch_index]
    if len(indices) != latent.shape[0]:
        raise ValueError(f"batch_index has {len(indices)} entries for a batch of {latent.shape[0]}")
    item_shape = [1, *latent.shape[1:]]
    drawn: dict[int, torch.Tensor] = {}
    wanted = set(indices)
    for i in range(max(indices) + 1):
        noise = torch.randn(item_shape, dtype=latent.dtype, generator=generator, device="cpu")
        if i in wanted:
            drawn[i] = noise
    return torch.cat([drawn[i] for i in indices], dim=0)


def default_noise_sampler(x: torch.Tensor, seed: int | None = None) -> NoiseSampler:
    """Fresh Gaussian noise shaped like ``x`` at every call, reproducible when seeded."""
    generator = cpu_generator(seed) if seed is not None else None

    def sample(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, dtype=x.dtype, generator=generator, device="cpu")
        return noise.to(x.device)

    return sample


class _Node:
    """One interval of the dyadic tree: its (rounded) ends and, once split, its midpoint and children.

    The split's seed is derived when its Gaussian is first needed and then kept, so a split whose
    children fell out of the cache is redrawn without deriving it again.
    """

    __slots__ = ("start", "end", "spawn_key", "depth", "midway", "seed", "left", "right")

    def __init__(self, start: float, end: float, spawn_key: int, depth: int) -> None:
        self.start, self.end, self.spawn_key, self.depth = start, end, spawn_key, depth
        self.midway: float | None = None
        self.seed: int | None = None
        self.left: _Node | None = None
        self.right: _Node | None = None


class _SpawnSeeds:
    """``SeedSequence(entropy, spawn_key=(key, depth), pool_size).generate_state(1)[0]``, in ~1 µs.

    numpy's SeedSequence (torchsde's split seeds) costs ~10 µs, mostly mixing the entropy into the
    pool, which is the same for every split of a tree. Its hash (NEP 19: frozen for
    reproducibility) is re-derived here after that common part: each spawn-key word is mixed into
    pool word 0 only, since the first output word reads nothing else. tests/sampling pins it
    against numpy.
    """

    MASK = 0xFFFFFFFF
    INIT_A, MULT_A, INIT_B, MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
    MIX_MULT_L, MIX_MULT_R, XSHIFT = 0xCA01F9DD, 0x4973F715, 16

    def __init__(self, entropy: int, pool_size: int) -> None:
        import numpy as np

        self._entropy, self._pool_size = entropy, pool_size
        self._seed_sequence = np.random.SeedSequence
        # With a spawn key the entropy is zero-padded to the pool size, which mixes exactly as the
        # unpadded entropy without one: so this pool is the common part. Longer entropy mixes
        # differently; numpy handles that (rare) case itself.
        self._fast = len(self._words(entropy)) < pool_size
        self._pool0 = int(np.random.SeedSequence(entropy, pool_size=pool_size).pool[0])
        mask = self.MASK
        self._hash_const = self.INIT_A * pow(self.MULT_A, pool_size * pool_size, mask + 1) & mask
        self._hash_step = pow(self.MULT_A, pool_size, mask + 1)  # hashes per mixed-in word

    def __call__(self, key: int, depth: int) -> int:
        if not self._fast:
            return int(self._seed_sequence(entropy=self._entropy, spawn_key=(key, depth),
                                           pool_size=self._pool_size).generate_state(1)[0])
        mask, xshift = self.MASK, self.XSHIFT
        mixed, hash_const = self._pool0, self._hash_const
        for word in self._words(key) + self._words(depth):
            next_const = hash_const * self.MULT_A & mask  # hashmix(word) with pool word 0's constant
            value = (word ^ hash_const) * next_const & mask
            value ^= value >> xshift
            mixed = (self.MIX_MULT_L * mixed - self.MIX_MULT_R * value) & mask  # mix(pool[0], value)
            mixed ^= mixed >> xshift
            hash_const = hash_const * self._hash_step & mask
        value = (mixed ^ self.INIT_B) * (self.INIT_B * self.MULT_B & mask) & mask  # generate_state word 0
        return value ^ (value >> xshift)

    @classmethod
    def _words(cls, n: int) -> list[int]:
        """numpy's _int_to_uint32_array: little-endian 32-bit words, one zero word for 0."""
        words = [n & cls.MASK]
        n >>= 32
        while n:
            words.append(n & cls.MASK)
            n >>= 32
        return words


def default_draw_threads(numel: int) -> int:
    """Worker threads for a tree's Gaussian draws: none for small latents or on a single core.

    Handing draws to a worker costs tens of µs of GIL hand-offs, so only latents whose draws take
    well over that are worth it (a 512×512 latent's 16384 floats take ~45-80 µs a draw); the
    calling thread draws too, so one worker per extra core, and two at most: more only adds
    hand-offs for chunks of a ~17-draw query (not measured beyond 2 cores).
    """
    cores = os.cpu_count() or 1
    if numel < _GaussianDraws.MIN_PARALLEL_NUMEL or cores < 2:
        return 0
    return min(_GaussianDraws.MAX_THREADS, cores - 1)


DrawJob = tuple[int, float]  # (seed, scale): the Gaussian scale * randn(generator seeded with seed)


class _GaussianDraws:
    """Seeded Gaussian draws of one shape, scaled, shared between the caller and a few workers.

    A draw's value depends only on its seed (each thread owns a generator and reseeds it per draw),
    so drawing in parallel gives the same bits as drawing in order. torch.randn releases the GIL,
    so the ~17 draws a new tree end point needs can run side by side. Each worker takes one
    contiguous chunk of a query's draws (one queue hand-off per chunk, not per draw); the caller
    keeps the first chunk, which it combines first, and draws any chunk no worker has begun, so a
    busy machine costs little more than drawing in order.

    What it buys is bounded by the GIL: a thread must take it back after every draw, and on a
    small VM that wake-up costs a good part of a 45 µs draw (two threads drawing reach 1.0-1.25×
    on a 2-core VM where two processes reach 2×). Measured there: the tree alone 6-13% faster
    when the machine is otherwise idle, ~10-20% slower when another process holds a core.
    """

    MIN_PARALLEL_NUMEL, MAX_THREADS = 4096, 2

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, threads: int) -> None:
        self._shape, self._dtype = shape, dtype
        self._generator = torch.Generator("cpu")  # the calling thread's draws
        self._local = threading.local()
        self.threads = max(0, int(threads))
        self._pool = ThreadPoolExecutor(self.threads, "brownian-draw") if self.threads else None

    def draw(self, seed: int, scale: float) -> torch.Tensor:
        """``scale * randn(seed)``, now, on this thread."""
        return self._scaled_randn(self._generator, seed, scale)

    def start(self, jobs: Sequence[DrawJob]) -> list[Callable[[], torch.Tensor]]:
        """Start ``jobs``; each returned thunk gives one draw (re-raising a worker's error)."""
        if self._pool is None or len(jobs) < 2:
            return [partial(self.draw, seed, scale) for seed, scale in jobs]
        chunks = _split_evenly(list(jobs), self.threads + 1)
        thunks = [partial(self.draw, seed, scale) for seed, scale in chunks[0]]
        for chunk in chunks[1:]:
            if chunk:
                handed = _HandedChunk(self, chunk, self._pool.submit(self._draw_on_worker, chunk))
                thunks += [partial(handed.value, i) for i in range(len(chunk))]
        return thunks

    def close(self) -> None:
        """Let the workers go (they also go when this object is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _draw_on_worker(self, chunk: list[DrawJob]) -> list[torch.Tensor]:
        generator = getattr(self._local, "generator", None)
        if generator is None:
            generator = self._local.generator = torch.Generator("cpu")
        return [self._scaled_randn(generator, seed, scale) for seed, scale in chunk]

    def _scaled_randn(self, generator: torch.Generator, seed: int, scale: float) -> torch.Tensor:
        # torchsde computes scale * randn: a scalar × tensor product rounds the same in place.
        generator.manual_seed(seed)
        return torch.randn(self._shape, dtype=self._dtype, generator=generator).mul_(scale)


class _HandedChunk:
    """Draws handed to a worker; taken back by the caller if the worker has not begun them."""

    def __init__(self, draws: _GaussianDraws, jobs: list[DrawJob], future: Future) -> None:
        self._draws, self._jobs, self._future = draws, jobs, future
        self._taken_back = False

    def value(self, i: int) -> torch.Tensor:
        if self._taken_back or self._future.cancel():  # the caller would only wait: draw instead
            self._taken_back = True
            return self._draws.draw(*self._jobs[i])
        return self._future.result()[i]


def _split_evenly(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` contiguous runs whose lengths differ by at most one, longest first."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        out.append(items[start:end])
        start = end
    return out


class HalfwayBrownianTree:
    """The increments of ``torchsde.BrownianTree(t0, zeros, t1, entropy=seed)``, bit for bit, faster.

    Re-derives torchsde's halfway tree (tol 1e-6, entropy pool 24, no Lévy area): each interval
    splits at its rounded midpoint with a Gaussian drawn from a generator seeded by
    ``SeedSequence(entropy, spawn_key=(key, depth))``, and a query sums the canonical pieces of
    [ta, tb] left to right, with the very same float operations. What differs is only the
    bookkeeping: both children of a split come from one draw (torchsde draws it once per child),
    the cache holds the root-to-endpoint paths of consecutive steps (torchsde's 45 entries thrash
    on them), so a 20-step run draws ~330-650 Gaussians instead of ~1000-1900, and a query first
    learns which splits it lacks and starts all their draws (in parallel, see _GaussianDraws)
    before combining them level by level. Split seeds come from _SpawnSeeds (numpy's
    SeedSequence hash, minus the part every split shares).
    tests/sampling/test_brownian_tree.py pins the equality against torchsde.
    """

    TOL, POOL_SIZE, MAX_DEPTH, CACHE_BYTES = 1e-6, 24, 900, 256 << 20

    def __init__(self, t0: float, t1: float, shape: Sequence[int], dtype: torch.dtype, entropy: int,
                 cache_entries: int | None = None, draw_threads: int | None = None) -> None:
        import numpy as np

        self._shape, self._dtype, self._entropy = tuple(shape), dtype, int(entropy)
        self._split_seed = _SpawnSeeds(self._entropy, self.POOL_SIZE)
        self._ndigits = -int(math.log10(self.TOL))
        t0, t1 = float(t0), float(t1)
        self._root = _Node(self._round(t0), self._round(t1), 0, 0)
        numel = math.prod(self._shape)
        if draw_threads is None:
            draw_threads = default_draw_threads(numel)
        self._draws = _GaussianDraws(self._shape, dtype, draw_threads)
        w_seed = np.random.SeedSequence(entropy=self._entropy, pool_size=self.POOL_SIZE).generate_state(1)[0]
        self._root_w = self._draws.draw(int(w_seed), math.sqrt(t1 - t0))
        self.draws = 1  # Gaussians drawn (or started) so far: what a query costs, for benchmarks
        if cache_entries is None:
            # 64+ split pairs hold the paths of consecutive steps (fewest draws); huge latents get
            # fewer, keeping memory near torchsde's own cache (45 single tensors).
            item_bytes = max(1, numel) * torch.empty((), dtype=dtype).element_size()
            cache_entries = min(128, max(24, self.CACHE_BYTES // (2 * item_bytes)))
        self._cache_entries = cache_entries
        self._children: OrderedDict[_Node, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @property
    def draw_threads(self) -> int:
        return self._draws.threads

    def close(self) -> None:
        """Release the draw workers now rather than at garbage collection."""
        self._draws.close()

    def _round(self, t: float) -> float:
        return round(t, self._ndigits)

    def _split(self, node: _Node) -> None:
        midway = self._round(0.5 * (node.end + node.start))
        node.midway = midway
        key, depth = 2 * node.spawn_key, node.depth + 1
        node.left = _Node(node.start, midway, key, depth)
        node.right = _Node(midway, node.end, key + 1, depth)

    def _seed(self, node: _Node) -> int:
        if node.seed is None:
            node.seed = self._split_seed(node.spawn_key, node.depth)
        return node.seed

    def _pieces(self, ta: float, tb: float) -> list[tuple[list[_Node], _Node]]:
        """The canonical intervals tiling [ta, tb], each with its root-to-parent path."""
        out: list[tuple[list[_Node], _Node]] = []
        stack = [(self._root, ta, tb, [])]
        while stack:
            node, a, b, path = stack.pop()
            while True:
                if a == node.start and b == node.end:
                    out.append((path, node))
                    break
                if node.midway is None:
                    if node.depth >= self.MAX_DEPTH:  # where torchsde's recursion gives up
                        raise ValueError(f"Brownian tree query [{ta}, {tb}] does not resolve at {self.TOL}")
                    self._split(node)
                path = [*path, node]
                if b <= node.midway:
                    node = node.left
                elif a >= node.midway:
                    node = node.right
                else:
                    stack.append((node.right, node.midway, b, path))
                    node, b = node.left, node.midway
        return out

    def _start_missing_draws(self, pieces: list[tuple[list[_Node], _Node]]) -> dict[_Node, Callable[[], torch.Tensor]]:
        """Start the draws of every split the pieces' walks will lack, shallowest first.

        Mirrors _w's walk (from the deepest cached ancestor down) without combining anything, so
        all draws of a query run at once. A started draw that the walk ends up not needing (the
        cache can change in between) is only wasted work; a needed one that was not started is
        drawn then: either way the values are the same.
        """
        missing: dict[_Node, None] = {}
        for path, _ in pieces:
            level = len(path)
            while level > 0 and path[level - 1] not in self._children:
                level -= 1
            missing.update((parent, None) for parent in path[level:] if parent not in self._children)
        jobs = [(self._seed(parent), self._noise_scale(parent)) for parent in missing]
        self.draws += len(jobs)
        return dict(zip(missing, self._draws.start(jobs)))

    def _w(self, path: list[_Node], node: _Node, started: dict[_Node, Callable[[], torch.Tensor]]) -> torch.Tensor:
        """W over ``node``: walk down from the deepest ancestor whose W is cached, combining draws."""
        chain = [*path, node]
        level = len(path)
        while level > 0 and chain[level - 1] not in self._children:
            level -= 1
        w = self._root_w if level == 0 else self._side(chain[level - 1], chain[level])
        for i in range(level, len(path)):
            parent, child = chain[i], chain[i + 1]
            pair = self._children.get(parent)
            if pair is None:
                pending = started.pop(parent, None)
                if pending is None:  # evicted since the query started (a tiny cache): draw again
                    self.draws += 1
                    pending = partial(self._draws.draw, self._seed(parent), self._noise_scale(parent))
                noise = pending()
                pair = self._store_children(parent, w, noise)
            else:
                self._children.move_to_end(parent)
            w = pair[0] if child is parent.left else pair[1]
        return w

    def _side(self, parent: _Node, child: _Node) -> torch.Tensor:
        pair = self._children[parent]
        return pair[0] if child is parent.left else pair[1]

    @staticmethod
    def _noise_scale(parent: _Node) -> float:
        # torchsde's _Interval: var = left_diff * right_diff * h_reciprocal; the noise is sqrt(var) * randn.
        h_reciprocal = 1 / (parent.end - parent.start)
        return math.sqrt((parent.midway - parent.start) * (parent.end - parent.midway) * h_reciprocal)

    def _store_children(self, parent: _Node, w: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The same float operations, in the same order, as torchsde's _Interval (Lévy area "none"):
        # mean = left_diff * W * h_reciprocal; left_W = mean + sqrt(var) * noise; right_W = W - left_W.
        # In place here: scalar products and a sum of two tensors commute exactly, so the roundings
        # are the same with fewer allocations. ``noise`` arrives already scaled by sqrt(var).
        h_reciprocal = 1 / (parent.end - parent.start)
        left_w = torch.mul(w, parent.midway - parent.start).mul_(h_reciprocal).add_(noise)
        pair = (left_w, w - left_w)
        self._children[parent] = pair
        while len(self._children) > self._cache_entries:
            self._children.popitem(last=False)
        return pair

    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        """W(tb) − W(ta) for t0 ≤ ta ≤ tb ≤ t1; points outside [t0, t1] are clamped, as in torchsde."""
        ta = min(max(float(ta), self._root.start), self._root.end)
        tb = min(max(float(tb), self._root.start), self._root.end)
        if ta > tb:
            raise ValueError(f"Brownian tree query needs ta <= tb, got {ta} > {tb}")
        if ta == tb:
            return torch.zeros(self._shape, dtype=self._dtype)
        ta_exact, tb_exact = ta, tb
        ta, tb = self._round(ta), self._round(tb)
        if ta == tb:  # torchsde recurses without end here (RecursionError): say why instead
            raise ValueError(f"Brownian tree query [{ta_exact}, {tb_exact}] is narrower than its "
                             f"resolution {self.TOL}")
        pieces = self._pieces(ta, tb)
        started = self._start_missing_draws(pieces)
        w = None
        for path, node in pieces:
            piece = self._w(path, node, started)
            w = piece.clone() if w is None else w.add_(piece)  # never hand out a cached tensor
        return w


class BrownianTreeNoiseSampler:
    """Noise for SDE samplers from one Brownian motion over [σ_min, σ_max] (torchsde's, bit for bit).

    Unlike fresh Gaussian draws, increments over sub-intervals stay consistent whatever the step
    schedule, which keeps SDE samplers converging as steps increase. Returns the normalised
    increment (W(σ_next) − W(σ)) / √|σ_next − σ|.
    """

    def __init__(self, x: torch.Tensor, sigma_min: float, sigma_max: float, seed: int | None = None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**63 - 1, []).item())
        t0, t1 = torch.as_tensor(sigma_min).cpu(), torch.as_tensor(sigma_max).cpu()
        self._reversed = bool(t0 > t1)
        if self._reversed:
            t0, t1 = t1, t0
        self._device = x.device
        # numpy's SeedSequence (behind torchsde) takes any non-negative int: the full seed range.
        entropy = int(seed)
        self._tree = HalfwayBrownianTree(float(t0), float(t1), x.shape, x.dtype, entropy)
        self._lock = threading.Lock()
        self._pending: dict[tuple[float, float], threading.Event] = {}
        self._ready: dict[tuple[float, float], torch.Tensor] = {}

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        key = (float(sigma), float(sigma_next))
        event = self._pending.get(key)
        if event is not None:
            event.wait()
            value = self._ready.pop(key, None)
            del self._pending[key]
            if value is not None:
                return value.to(self._device)
        return self._increment(sigma, sigma_next).to(self._device)

    def prefetch(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Compute the increments a sampler will ask for, in order, on a background thread.

        A tree query costs tens of Gaussian draws of the latent's size; done while the model runs
        on an accelerator it leaves the sampler's critical path (the samplers prefetch only then:
        see samplers._prefetch_pays). The tree is order-independent, so values are identical to
        querying on demand.
        """
        jobs = []
        for a, b in pairs:
            key = (float(a), float(b))
            if key not in self._pending:
                self._pending[key] = threading.Event()
                jobs.append((a, b, key))

        def work() -> None:
            failed = False
            for a, b, key in jobs:
                try:
                    if not failed:  # after a failure the caller recomputes, and sees the error itself
                        self._ready[key] = self._increment(a, b)
                except Exception:
                    failed = True
                finally:
                    self._pending[key].set()  # set every event, so no caller waits forever

        threading.Thread(target=work, name="brownian-prefetch", daemon=True).start()

    def _increment(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = torch.as_tensor(sigma).cpu(), torch.as_tensor(sigma_next).cpu()
        sign = -1.0 if self._reversed else 1.0
        if a > b:
            a, b, sign = b, a, -sign
        with self._lock:
            w = self._tree(a, b)  # a fresh tensor: safe to finish in place
        # k-diffusion: tree(a, b) * sign / |b - a|.sqrt(); x * -1.0 is exactly -x and x * 1.0 is x,
        # and the in-place division rounds as the out-of-place one.
        if sign < 0:
            w.neg_()
        return w.div_((b - a).abs().sqrt())
