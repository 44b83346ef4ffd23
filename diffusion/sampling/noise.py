"""Seeded noise: the initial latent noise and the extra noise ancestral/SDE samplers inject.

Everything is drawn on the CPU from a seeded generator and then moved, so a seed gives the same
image on every device (and the same as ComfyUI's CPU-drawn initial noise).
"""

from __future__ import annotations

import threading
import warnings
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


class BrownianTreeNoiseSampler:
    """Noise for SDE samplers from one Brownian motion over [σ_min, σ_max] (torchsde).

    Unlike fresh Gaussian draws, increments over sub-intervals stay consistent whatever the step
    schedule, which keeps SDE samplers converging as steps increase. Returns the normalised
    increment (W(σ_next) − W(σ)) / √|σ_next − σ|.
    """

    def __init__(self, x: torch.Tensor, sigma_min: float, sigma_max: float, seed: int | None = None) -> None:
        import torchsde

        if seed is None:
            seed = int(torch.randint(0, 2**63 - 1, []).item())
        t0, t1 = torch.as_tensor(sigma_min).cpu(), torch.as_tensor(sigma_max).cpu()
        self._reversed = bool(t0 > t1)
        if self._reversed:
            t0, t1 = t1, t0
        self._device = x.device
        # numpy's SeedSequence (behind torchsde) takes any non-negative int: the full seed range.
        entropy = int(seed)
        w0 = torch.zeros_like(x, device="cpu")
        self._tree = torchsde.BrownianTree(t0, w0, t1, entropy=entropy)
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
