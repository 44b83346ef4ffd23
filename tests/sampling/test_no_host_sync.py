"""The sampling loop never makes the host wait for the device.

The stand-in device is ``meta``: tensors there have shapes but no data, so, as on a GPU, reading
one from the host (``.item()``, ``float(t)``, ``if t:``, ``.cpu()``, ``.tolist()``) cannot be
answered without the device, and a host tensor copied in with a blocking copy would, on a GPU,
wait for the device queue. A torch-function mode counts both kinds of call while a sampler runs
a tiny real UNet through the whole KSampler path (conditioning, CFG, previews) and requires none.
"""

from __future__ import annotations

import traceback

import pytest
import torch
from torch.overrides import TorchFunctionMode

from diffusion.checkpoint import load_checkpoint
from diffusion.latent_formats import SD15
from diffusion.memory import ModelManager
from diffusion.sampling import pipeline
from diffusion.sampling.preview import PreviewStream
from diffusion.sampling.samplers import SAMPLERS

DEVICE = torch.device("meta")
READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.__float__,
         torch.Tensor.__int__, torch.Tensor.__bool__, torch.Tensor.__index__}
COPIES = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.copy_, torch.tensor, torch.as_tensor}
# Samplers whose algorithm needs values on the host every step: adaptive step-size control reads
# the error estimate back to decide the next step (k-diffusion's dpm_adaptive does the same).
HOST_DRIVEN = {"dpm_adaptive"}
# The default workflow's sampler and the most used ones run in every test pass; the rest are slow
# (each runs a UNet through a Python-level function mode).
COMMON = {"euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde"}


def _on_device(value) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == DEVICE.type


class HostSyncCounter(TorchFunctionMode):
    """Records every host read of a device tensor and every blocking host→device copy."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def _record(self, what: str) -> None:
        self.events.append(what + "\n" + "".join(traceback.format_stack(limit=6)[:-2]))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in READS and args and _on_device(args[0]):
            self._record(f"host read {func.__name__}")
            raise AssertionError(self.events[-1])
        result = func(*args, **kwargs)
        if func in COPIES and _on_device(result if func is not torch.Tensor.copy_ else args[0]):
            source = args[1] if func is torch.Tensor.copy_ else args[0] if args else None
            from_host = not isinstance(source, torch.Tensor) or source.device.type == "cpu"
            if from_host and not kwargs.get("non_blocking", False):
                self._record(f"blocking host-to-device copy via {func.__name__}")
        return result


class WatchedSampler:
    """A SAMPLER value whose function runs under the counter: the loop, and only the loop."""

    def __init__(self, name: str, counter: HostSyncCounter) -> None:
        self.name, self.options, self.counter = name, {}, counter

    def function(self, *args, **kwargs):
        with self.counter:
            return SAMPLERS[self.name](*args, **kwargs)


@pytest.fixture(scope="module")
def device_model(tmp_path_factory):
    from diffusion.checkpoint.tiny import write_tiny_checkpoint

    path = write_tiny_checkpoint(tmp_path_factory.mktemp("sync") / "tiny-sd1.safetensors", "sd1", 0)
    return load_checkpoint(path, ModelManager(DEVICE), load_clip=False, load_vae=False).model


def _conds(seed):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, 77, 32, generator=g), {}]]


@pytest.mark.parametrize("name", [name if name in COMMON else pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted(set(SAMPLERS) - HOST_DRIVEN)])
def test_sampling_loop_makes_no_host_sync(device_model, name):
    counter = HostSyncCounter()
    latent = torch.zeros(1, 4, 8, 8)
    sigmas = pipeline.ksampler_sigmas(pipeline.model_sampling_for(device_model), "karras", name, 4)
    previews = PreviewStream(SD15, lambda rgb: rgb.shape, DEVICE, min_interval=0.0)
    steps = []

    def callback(step, total, x0):
        previews.offer(step, total, x0)
        steps.append(step)

    samples, x0 = pipeline.run_sampler(device_model, WatchedSampler(name, counter), sigmas, torch.randn(latent.shape),
                                       latent, _conds(1), _conds(2), 7.0, seed=3, callback=callback, on_device=True)
    previews.close()
    assert samples.device == DEVICE and samples.shape == latent.shape
    assert steps
    assert counter.events == [], "\n".join(counter.events)


def test_the_counter_sees_a_host_read_and_a_blocking_copy():
    counter = HostSyncCounter()
    with counter:
        torch.ones(2, device=DEVICE) + torch.ones(2).to(DEVICE)
        with pytest.raises(AssertionError):
            float(torch.ones((), device=DEVICE))
    assert [e.split("\n")[0] for e in counter.events] == ["blocking host-to-device copy via to", "host read __float__"]
