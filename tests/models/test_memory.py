"""ModelManager: dtype policy, settings, LRU offload under a budget, size reporting."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from diffusion.memory import GIB, ModelManager, module_size_bytes


def _net(width: int) -> nn.Module:
    return nn.Linear(width, width, bias=False)  # width² fp32 parameters


def test_from_settings_reads_flags_by_name_with_defaults():
    manager = ModelManager.from_settings(SimpleNamespace(cpu=True, vram_budget=1.5, lowvram=True, bf16=True))
    assert manager.device == torch.device("cpu")
    assert manager.vram_budget_bytes == int(1.5 * GIB)
    assert manager.lowvram and manager.prefer_bf16
    assert manager.unet_dtype() == torch.bfloat16
    from app.settings import Settings

    assert ModelManager.from_settings(Settings(cpu=True, vram_budget_gb=2)).vram_budget_bytes == 2 * GIB
    plain = ModelManager.from_settings(SimpleNamespace(cpu=True))
    assert plain.vram_budget_bytes is None and not plain.lowvram
    assert plain.unet_dtype() == torch.float32 and plain.vae_dtype() == torch.float32


def test_least_recently_used_model_is_offloaded_to_fit_the_budget():
    a, b, c = _net(64), _net(64), _net(64)
    size = module_size_bytes(a)
    manager = ModelManager("cpu", vram_budget_bytes=2 * size)
    for net, name in ((a, "a"), (b, "b")):
        manager.load(net, name)
    manager.load(a)  # a is now the most recently used
    manager.load(c, "c")
    resident = {info.name for info in manager.loaded_models() if info.on_device}
    assert resident == {"a", "c"}
    assert manager.resident_bytes() == 2 * size
    assert [info.name for info in manager.loaded_models()] == ["c", "a", "b"]


def test_lowvram_keeps_only_the_model_in_use():
    a, b = _net(32), _net(32)
    manager = ModelManager("cpu", lowvram=True)
    manager.load(a, "a")
    manager.load(b, "b")
    assert {i.name for i in manager.loaded_models() if i.on_device} == {"b"}
    manager.load(a)
    assert {i.name for i in manager.loaded_models() if i.on_device} == {"a"}


def test_sizes_are_reported_and_dropped_models_forgotten():
    manager = ModelManager("cpu")
    net = _net(16)
    manager.register(net, "small")
    assert manager.size_of(net) == 16 * 16 * 4
    assert [i.size_bytes for i in manager.loaded_models()] == [1024]
    del net
    import gc

    gc.collect()
    assert manager.loaded_models() == []


def test_budget_limits_free_memory_for_activations():
    net = _net(64)
    manager = ModelManager("cpu", vram_budget_bytes=module_size_bytes(net) + 1000)
    manager.load(net)
    assert manager.free_memory_bytes() == 1000


class _Recorder(nn.Linear):
    """Records where the manager sends it (this machine has no accelerator to move to)."""

    def __init__(self) -> None:
        super().__init__(8, 8, bias=False)
        self.moves: list[str] = []

    def to(self, device):  # type: ignore[override]
        self.moves.append(str(device))
        return self


def test_offloading_moves_weights_when_devices_differ():
    first, second = _Recorder(), _Recorder()
    manager = ModelManager("cuda:0", vram_budget_bytes=module_size_bytes(first), offload_device="cpu")
    manager.load(first, "first")
    manager.load(second, "second")
    assert first.moves == ["cuda:0", "cpu"]
    assert second.moves == ["cuda:0"]
    assert {i.name for i in manager.loaded_models() if i.on_device} == {"second"}
    manager.load(second)  # already resident: no transfer
    assert second.moves == ["cuda:0"]
