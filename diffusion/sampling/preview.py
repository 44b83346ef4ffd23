"""Live previews kept off the sampling loop's critical path.

A preview is computed on the latent's device (the family's 4×3 latent→RGB map), copied to the
host asynchronously (pinned memory, ``non_blocking``) and encoded on a worker thread once a CUDA
event says the copy has landed. The sampling thread never waits for the device or the encoder: it
only enqueues a few small kernels, and picks up whatever preview has finished by a later step.
Previews are rate-limited (at most one in flight, at least ``min_interval`` seconds apart), so on
an accelerator a step costs about the same with previews on as off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

# Shortest time between two previews: ~10 frames a second is smooth for a person, and a fast
# sampler (100 steps/s) would otherwise spend its host time on images nobody can follow.
PREVIEW_MIN_INTERVAL = 0.1


def latent_to_rgb(x0: torch.Tensor, latent_format: Any) -> torch.Tensor:
    """First batch item of a scaled latent ``[B,C,h,w]`` as uint8 RGB ``[h,w,3]`` on x0's device."""
    factors = torch.tensor(latent_format.latent_rgb_factors, dtype=torch.float32, device=x0.device)
    bias = latent_format.latent_rgb_bias
    return _to_uint8_rgb(x0, factors, None if bias is None else torch.tensor(bias, device=x0.device))


def _to_uint8_rgb(x0: torch.Tensor, factors: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    rgb = torch.einsum("chw,cr->hwr", x0[0].float(), factors)
    if bias is not None:
        rgb = rgb + bias
    return (((rgb + 1.0) / 2.0).clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)


class PreviewStream:
    """Turns x0 estimates into encoded previews without stalling the step that produced them.

    ``offer(step, total, x0)`` may start a preview (rate limit permitting) and returns the newest
    finished one not handed out yet, or None. ``close()`` waits for the one in flight and returns
    it (the sampler's last state), then stops the worker.
    """

    def __init__(self, latent_format: Any, encode: Callable[[torch.Tensor], Any], device: torch.device | str,
                 min_interval: float = PREVIEW_MIN_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = torch.device(device)
        self.encode, self.min_interval, self.clock = encode, min_interval, clock
        # The factors go to the device once, here: a host tensor copied in the loop would sync it.
        self._factors = torch.tensor(latent_format.latent_rgb_factors, dtype=torch.float32).to(self.device)
        bias = latent_format.latent_rgb_bias
        self._bias = None if bias is None else torch.tensor(bias, dtype=torch.float32).to(self.device)
        self._async = self.device.type == "cuda"
        self._host: torch.Tensor | None = None  # pinned landing buffer, reused (one job in flight)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview")
        self._pending: Future | None = None
        self._last_start = -float("inf")
        self.started = 0

    def offer(self, step: int, total: int, x0: torch.Tensor) -> Any | None:
        ready = self._take_finished()
        busy = self._pending is not None
        now = self.clock()
        if not busy and (step == 0 or step >= total - 1 or now - self._last_start >= self.min_interval):
            self._start(x0)
            self._last_start = now
        return ready

    def close(self) -> Any | None:
        """The preview still in flight (waited for), or None; the worker stops."""
        try:
            pending, self._pending = self._pending, None
            return None if pending is None else pending.result()
        finally:
            self._worker.shutdown(wait=True)

    # internals ------------------------------------------------------------------------------------
    def _take_finished(self) -> Any | None:
        pending = self._pending
        if pending is None or not pending.done():
            return None
        self._pending = None
        return pending.result()

    def _start(self, x0: torch.Tensor) -> None:
        rgb = _to_uint8_rgb(x0.detach(), self._factors, self._bias)
        self.started += 1
        if not self._async:
            self._pending = self._worker.submit(self.encode, rgb)
            return
        if self._host is None or self._host.shape != rgb.shape:
            self._host = torch.empty(rgb.shape, dtype=torch.uint8, pin_memory=True)
        host = self._host
        host.copy_(rgb, non_blocking=True)
        landed = torch.cuda.Event()
        landed.record()

        def finish() -> Any:
            landed.synchronize()  # releases the GIL; only this worker waits for the device
            return self.encode(host)

        self._pending = self._worker.submit(finish)
