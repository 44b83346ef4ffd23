"""Seeded noise: the initial latent noise and the extra noise ancestral/SDE samplers inject.

Drawn on the CPU and then moved, so a seed gives the same image on every device (and ComfyUI's).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def cpu_generator(seed: int) -> torch.Generator:
    """A CPU generator for any seed in 0..2^64-1 (torch accepts the full unsigned range)."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {seed}")
    return torch.Generator("cpu").manual_seed(int(seed))


def prepare_noise(latent: torch.Tensor, seed: int, batch_index: Sequence[int] | None = None) -> torch.Tensor:
    """Initial noise for ``latent`` ([B,C,h,w]) from ``seed``; with ``batch_index`` (LatentFromBatch
    and friends) entry ``i`` gets the ``i``-th per-item draw, the same image it had in its batch."""
    generator = cpu_generator(seed)
    if batch_index is None:
        return torch.randn(latent.shape, dtype=latent.dtype, generator=generator, device="cpu")
    indices = [int(i) for i in batch_index]
    if len(indices) != latent.shape[0]:
        raise ValueError(f"batch_index has {len(indices)} entries for a batch of {latent.shape[0]}")
    item_shape = [1, *latent.shape[1:]]
    drawn = [torch.randn(item_shape, dtype=latent.dtype, generator=generator, device="cpu")
             for _ in range(max(indices) + 1)]
    return torch.cat([drawn[i] for i in indices], dim=0)


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host-drawn tensor on ``device`` without stalling the sampler: a copy from ordinary
    (pageable) memory makes the host wait for the device queue, one from pinned memory does not."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=device.type != "cpu")


def default_noise_sampler(x: torch.Tensor, seed: int | None = None) -> NoiseSampler:
    """Fresh Gaussian noise shaped like ``x`` at every call, reproducible when seeded."""
    generator = cpu_generator(seed) if seed is not None else None

    def sample(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, dtype=x.dtype, generator=generator, device="cpu")
        return host_to_device(noise, x.device)

    return sample


@dataclass(eq=False, slots=True)  # nodes key the cache by identity
class _Node:
    """One interval of the dyadic tree: its rounded ends and, once split, its midpoint and children."""

    start: float
    end: float
    spawn_key: int
    depth: int
    midway: float | None = None
    left: _Node | None = None
    right: _Node | None = None

    def split(self, midway: float) -> None:
        self.midway, key, depth = midway, 2 * self.spawn_key, self.depth + 1
        self.left, self.right = _Node(self.start, midway, key, depth), _Node(midway, self.end, key + 1, depth)


class HalfwayBrownianTree:
    """The increments of ``torchsde.BrownianTree(t0, zeros, t1, entropy=seed)``, bit for bit.

    torchsde's halfway tree (tol 1e-6, entropy pool 24, no Lévy area) with the same seeds and float
    operations, but one Gaussian per split (torchsde draws it once per child) and an LRU cache of
    split children big enough for the root-to-endpoint paths of consecutive steps, which torchsde's
    45-entry cache thrashes on: about a third of its draws. ``draws`` counts them for bench/.
    """

    TOL, POOL_SIZE, MAX_DEPTH, CACHE_BYTES = 1e-6, 24, 900, 256 << 20

    def __init__(self, t0: float, t1: float, shape: Sequence[int], dtype: torch.dtype, entropy: int,
                 cache_entries: int | None = None) -> None:
        self._shape, self._dtype, self._entropy, self.draws = tuple(shape), dtype, int(entropy), 0
        self._generator = torch.Generator("cpu")
        self._root = _Node(self._round(t0), self._round(t1), 0, 0)
        self._root_w = self._draw(np.random.SeedSequence(self._entropy, pool_size=self.POOL_SIZE),
                                  math.sqrt(t1 - t0))
        # Enough split pairs for consecutive steps' paths; huge latents keep near torchsde's memory.
        item_bytes = max(1, math.prod(self._shape)) * torch.empty((), dtype=dtype).element_size()
        self._cache_entries = cache_entries or min(128, max(24, self.CACHE_BYTES // (2 * item_bytes)))
        self._children: OrderedDict[_Node, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def _round(self, t: float) -> float:
        return round(t, 6)  # torchsde rounds times to its tolerance, 1e-6

    def _draw(self, seeds: np.random.SeedSequence, scale: float) -> torch.Tensor:
        # torchsde computes scale * randn: a scalar product rounds the same in place.
        self.draws += 1
        self._generator.manual_seed(int(seeds.generate_state(1)[0]))
        return torch.randn(self._shape, dtype=self._dtype, generator=self._generator).mul_(scale)

    def _children_of(self, parent: _Node, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W over ``parent``'s halves, cached or drawn given ``w``, W over ``parent``."""
        pair = self._children.get(parent)
        if pair is None:
            # torchsde's _Interval (Lévy area "none") with the same float operations in the same order:
            # var = left_diff * right_diff / h; left_W = left_diff * W / h + sqrt(var) * randn; right_W = W - left_W.
            h_reciprocal = 1 / (parent.end - parent.start)
            left_diff, right_diff = parent.midway - parent.start, parent.end - parent.midway
            seeds = np.random.SeedSequence(self._entropy, spawn_key=(parent.spawn_key, parent.depth),
                                           pool_size=self.POOL_SIZE)
            noise = self._draw(seeds, math.sqrt(left_diff * right_diff * h_reciprocal))
            left_w = torch.mul(w, left_diff).mul_(h_reciprocal).add_(noise)
            pair = self._children[parent] = (left_w, w - left_w)
            while len(self._children) > self._cache_entries:
                self._children.popitem(last=False)
        self._children.move_to_end(parent)  # a shallow split serves every later query: keep it
        return pair

    def __call__(self, ta: float, tb: float) -> torch.Tensor:
        """W(tb) − W(ta) for t0 ≤ ta ≤ tb ≤ t1; points outside [t0, t1] are clamped, as in torchsde."""
        ta = min(max(float(ta), self._root.start), self._root.end)
        tb = min(max(float(tb), self._root.start), self._root.end)
        if ta > tb:
            raise ValueError(f"Brownian tree query needs ta <= tb, got {ta} > {tb}")
        if ta == tb:
            return torch.zeros(self._shape, dtype=self._dtype)
        if self._round(ta) == self._round(tb):  # torchsde recurses without end here: say why instead
            raise ValueError(f"Brownian tree query [{ta}, {tb}] is narrower than its resolution {self.TOL}")
        # Sum W over the canonical intervals tiling [ta, tb], left to right, as torchsde does.
        total, ta, tb = None, self._round(ta), self._round(tb)
        stack = [(self._root, self._root_w, ta, tb)]
        while stack:
            node, w, a, b = stack.pop()
            while not (a == node.start and b == node.end):
                if node.midway is None:
                    if node.depth >= self.MAX_DEPTH:  # where torchsde's recursion gives up
                        raise ValueError(f"Brownian tree query [{ta}, {tb}] does not resolve at {self.TOL}")
                    node.split(self._round(0.5 * (node.end + node.start)))
                left_w, right_w = self._children_of(node, w)
                if b <= node.midway:
                    node, w = node.left, left_w
                elif a >= node.midway:
                    node, w = node.right, right_w
                else:
                    stack.append((node.right, right_w, node.midway, b))
                    node, w, b = node.left, left_w, node.midway
            total = w.clone() if total is None else total.add_(w)  # never hand out a cached tensor
        return total


class BrownianTreeNoiseSampler:
    """Noise for SDE samplers from one Brownian motion over [σ_min, σ_max] (k-diffusion's, bit for bit).

    Increments over sub-intervals stay consistent whatever the step schedule, which keeps SDE
    samplers converging as steps increase. Returns (W(σ_next) − W(σ)) / √|σ_next − σ|.
    """

    def __init__(self, x: torch.Tensor, sigma_min: float, sigma_max: float, seed: int | None = None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**63 - 1, []).item())
        t0, t1 = torch.as_tensor(sigma_min).cpu(), torch.as_tensor(sigma_max).cpu()
        self._reversed = bool(t0 > t1)
        if self._reversed:
            t0, t1 = t1, t0
        self._device = x.device
        # numpy's SeedSequence takes any non-negative int: the full 64-bit seed range.
        self._tree = HalfwayBrownianTree(float(t0), float(t1), x.shape, x.dtype, int(seed))
        self._lock = threading.Lock()  # the tree is shared with the prefetch thread
        self._pending: dict[tuple[float, float], Future[torch.Tensor]] = {}

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        pending = self._pending.pop((float(sigma), float(sigma_next)), None)
        w = pending.result() if pending is not None else self._increment(sigma, sigma_next)
        return host_to_device(w, self._device)

    def prefetch(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Compute these increments in order on a thread, hiding the tree behind model steps that
        leave the CPU idle (the samplers call this only for a model on an accelerator)."""
        worker = ThreadPoolExecutor(1, "brownian-prefetch")
        for a, b in pairs:
            key = (float(a), float(b))
            if key not in self._pending:
                self._pending[key] = worker.submit(self._increment, a, b)
        worker.shutdown(wait=False)  # the thread ends once its queue is done

    def _increment(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = torch.as_tensor(sigma).cpu(), torch.as_tensor(sigma_next).cpu()
        sign = -1.0 if self._reversed else 1.0
        if a > b:
            a, b, sign = b, a, -sign
        with self._lock:
            w = self._tree(a, b)  # a fresh tensor: safe to finish in place
        # k-diffusion: tree(a, b) * sign / |b - a|.sqrt(); x * -1.0 is exactly -x, x * 1.0 is x,
        # and the in-place division rounds as the out-of-place one.
        if sign < 0:
            w.neg_()
        return w.div_((b - a).abs().sqrt())
