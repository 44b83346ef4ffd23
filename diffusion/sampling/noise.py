"""Seeded noise: the initial latent noise and the extra noise ancestral/SDE samplers inject.

Everything is drawn on the CPU from a seeded generator and then moved, so a seed gives the same
image on every device (and the same as ComfyUI's CPU-drawn initial noise).
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence

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
    """One interval of the dyadic tree: its (rounded) ends and, once split, its split seed and children."""

    __slots__ = ("start", "end", "spawn_key", "depth", "midway", "seed", "left", "right")

    def __init__(self, start: float, end: float, spawn_key: int, depth: int) -> None:
        self.start, self.end, self.spawn_key, self.depth = start, end, spawn_key, depth
        self.midway: float | None = None
        self.seed = 0
        self.left: _Node | None = None
        self.right: _Node | None = None


class HalfwayBrownianTree:
    """The increments of ``torchsde.BrownianTree(t0, zeros, t1, entropy=seed)``, bit for bit, faster.

    Re-derives torchsde's halfway tree (tol 1e-6, entropy pool 24, no Lévy area): each interval
    splits at its rounded midpoint with a Gaussian drawn from a generator seeded by
    ``SeedSequence(entropy, spawn_key=(key, depth))``, and a query sums the canonical pieces of
    [ta, tb] left to right, with the very same float operations. What differs is only the
    bookkeeping: both children of a split come from one draw (torchsde draws it once per child),
    and the cache holds the root-to-endpoint paths of consecutive steps (torchsde's 45 entries
    thrash on them), so a 20-step run draws ~330-650 Gaussians instead of ~1000-1900.
    tests/sampling/test_brownian_tree.py pins the equality against torchsde.
    """

    TOL, POOL_SIZE, MAX_DEPTH, CACHE_BYTES = 1e-6, 24, 900, 256 << 20

    def __init__(self, t0: float, t1: float, shape: Sequence[int], dtype: torch.dtype, entropy: int,
                 cache_entries: int | None = None) -> None:
        import numpy as np

        self._seed_sequence = np.random.SeedSequence
        self._shape, self._dtype, self._entropy = tuple(shape), dtype, int(entropy)
        self._ndigits = -int(math.log10(self.TOL))
        t0, t1 = float(t0), float(t1)
        self._root = _Node(self._round(t0), self._round(t1), 0, 0)
        self._generator = torch.Generator("cpu")
        w_seed = self._seed_sequence(entropy=self._entropy, pool_size=self.POOL_SIZE).generate_state(3)[0]
        self._root_w = self._randn(w_seed) * math.sqrt(t1 - t0)
        if cache_entries is None:
            # 64+ split pairs hold the paths of consecutive steps (fewest draws); huge latents get
            # fewer, keeping memory near torchsde's own cache (45 single tensors).
            item_bytes = max(1, math.prod(self._shape)) * torch.empty((), dtype=dtype).element_size()
            cache_entries = min(128, max(24, self.CACHE_BYTES // (2 * item_bytes)))
        self._cache_entries = cache_entries
        self._children: OrderedDict[_Node, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _round(self, t: float) -> float:
        return round(t, self._ndigits)

    def _randn(self, seed) -> torch.Tensor:
        self._generator.manual_seed(int(seed))
        return torch.randn(self._shape, dtype=self._dtype, generator=self._generator)

    def _split(self, node: _Node) -> None:
        midway = self._round(0.5 * (node.end + node.start))
        node.midway = midway
        state = self._seed_sequence(entropy=self._entropy, spawn_key=(node.spawn_key, node.depth),
                                    pool_size=self.POOL_SIZE).generate_state(4)
        node.seed = state[0]
        key, depth = 2 * node.spawn_key, node.depth + 1
        node.left = _Node(node.start, midway, key, depth)
        node.right = _Node(midway, node.end, key + 1, depth)

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

    def _w(self, path: list[_Node], node: _Node) -> torch.Tensor:
        """W over ``node``: walk down from the deepest ancestor whose W is cached, drawing splits."""
        chain = [*path, node]
        level = len(path)
        while level > 0 and chain[level - 1] not in self._children:
            level -= 1
        w = self._root_w if level == 0 else self._side(chain[level - 1], chain[level])
        for i in range(level, len(path)):
            parent, child = chain[i], chain[i + 1]
            pair = self._children.get(parent)
            if pair is None:
                pair = self._draw_children(parent, w)
            else:
                self._children.move_to_end(parent)
            w = pair[0] if child is parent.left else pair[1]
        return w

    def _side(self, parent: _Node, child: _Node) -> torch.Tensor:
        pair = self._children[parent]
        return pair[0] if child is parent.left else pair[1]

    def _draw_children(self, parent: _Node, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The same float operations, in the same order, as torchsde's _Interval (Lévy area "none").
        h_reciprocal = 1 / (parent.end - parent.start)
        left_diff = parent.midway - parent.start
        right_diff = parent.end - parent.midway
        # torchsde: mean = left_diff * W * h_reciprocal; left_W = mean + sqrt(var) * noise. In place
        # here: the same roundings (scalar products commute exactly), fewer allocations.
        var = left_diff * right_diff * h_reciprocal
        left_w = torch.mul(w, left_diff).mul_(h_reciprocal)
        left_w.add_(self._randn(parent.seed).mul_(math.sqrt(var)))
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
        w = None
        for path, node in self._pieces(ta, tb):
            piece = self._w(path, node)
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
        (on a GPU, or other CPU cores) it leaves the sampler's critical path. The tree is
        order-independent, so values are identical to querying on demand.
        """
        jobs = []
        for a, b in pairs:
            key = (float(a), float(b))
            if key not in self._pending:
                self._pending[key] = threading.Event()
                jobs.append((a, b, key))

        def work() -> None:
            for a, b, key in jobs:
                try:
                    self._ready[key] = self._increment(a, b)
                finally:
                    self._pending[key].set()

        threading.Thread(target=work, name="brownian-prefetch", daemon=True).start()

    def _increment(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = torch.as_tensor(sigma).cpu(), torch.as_tensor(sigma_next).cpu()
        sign = -1.0 if self._reversed else 1.0
        if a > b:
            a, b, sign = b, a, -sign
        with self._lock, warnings.catch_warnings():
            # torchsde warns when a query sits a float32 ulp outside [t0, t1]; the value is exact.
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            w = self._tree(a, b) * sign
        return w / (b - a).abs().sqrt()
