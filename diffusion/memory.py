"""ModelManager: one place that decides where model weights live and in which dtype.

Loaded networks are registered once and shared by every handle that uses them (clones never copy
weights). Before a network runs, ``load(module)`` moves it to the compute device; when the
resident total would exceed the budget, the least recently used other networks go back to the
offload device (system RAM). On a CPU-only machine both devices are the CPU, so the manager only
keeps the books (sizes for the engine's cache accounting, use order) and chooses dtypes.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from diffusion import devices

GIB = 1 << 30


def module_size_bytes(module: nn.Module) -> int:
    """Bytes held by a module's parameters and buffers."""
    tensors = itertools.chain(module.parameters(), module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class _Entry:
    ref: weakref.ref
    name: str
    size: int
    on_device: bool
    last_used: int


@dataclass(frozen=True)
class LoadedModelInfo:
    """One registered network as the manager sees it."""

    name: str
    size_bytes: int
    on_device: bool


class ModelManager:
    """Places networks on the compute device on use and offloads least-recently-used ones.

    ``vram_budget_bytes`` caps the bytes resident on the compute device (None: the device's free
    memory decides). ``lowvram`` keeps only the network in use resident.
    """

    def __init__(
        self,
        device: torch.device | str | None = None,
        vram_budget_bytes: int | None = None,
        lowvram: bool = False,
        *,
        prefer_bf16: bool = False,
        offload_device: torch.device | str = "cpu",
        compile_unet: bool = False,
    ) -> None:
        self.device = torch.device(device) if device is not None else devices.default_device()
        self.offload_device = torch.device(offload_device)
        self.vram_budget_bytes = vram_budget_bytes
        self.lowvram = lowvram
        self.prefer_bf16 = prefer_bf16
        self.compile_unet = compile_unet  # run UNets through diffusion.compile (--compile)
        self._entries: dict[int, _Entry] = {}
        # Loaded files, so that two loader nodes naming one file share its networks (weak: a file's
        # networks are freed when no value uses them any more).
        self._files: dict[Hashable, tuple[weakref.ref | None, ...]] = {}
        self._clock = itertools.count(1)
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Any) -> ModelManager:
        """Build from the app settings (``cpu``, ``vram_budget`` in GB, ``lowvram``, ``bf16``, ``compile``).

        ``app.settings.Settings`` spells the budget ``vram_budget_gb``; both names are read.
        """
        budget_gb = getattr(settings, "vram_budget", None)
        if budget_gb is None:
            budget_gb = getattr(settings, "vram_budget_gb", None)
        return cls(
            device=devices.default_device(force_cpu=bool(getattr(settings, "cpu", False))),
            vram_budget_bytes=None if budget_gb in (None, 0) else int(float(budget_gb) * GIB),
            lowvram=bool(getattr(settings, "lowvram", False)),
            prefer_bf16=bool(getattr(settings, "bf16", False)),
            compile_unet=bool(getattr(settings, "compile", False)),
        )

    # dtype policy -------------------------------------------------------------------------------
    def unet_dtype(self) -> torch.dtype:
        """Compute dtype for diffusion networks on this manager's device."""
        return devices.unet_dtype(self.device, self.prefer_bf16)

    def vae_dtype(self) -> torch.dtype:
        """Compute dtype for the VAE on this manager's device."""
        return devices.vae_dtype(self.device, self.prefer_bf16)

    def text_encoder_dtype(self) -> torch.dtype:
        """Text encoders follow the UNet policy (they are small; fp16 is fine on GPUs)."""
        return devices.unet_dtype(self.device, self.prefer_bf16)

    @property
    def storage_device(self) -> torch.device:
        """Where freshly loaded weights are placed before first use."""
        return self.offload_device if self.device != self.offload_device else self.device

    # bookkeeping --------------------------------------------------------------------------------
    def register(self, module: nn.Module, name: str = "") -> nn.Module:
        """Start tracking a network (idempotent); returns it for chaining."""
        with self._lock:
            key = id(module)
            if key not in self._entries:
                # With one shared device, "resident" only means "counted against the budget": a
                # network starts uncounted and is counted from its first use.
                on_device = self.device != self.offload_device and _module_device(module) == self.device
                self._entries[key] = _Entry(
                    ref=weakref.ref(module, lambda _ref, key=key: self._forget(key)),
                    name=name or type(module).__name__,
                    size=module_size_bytes(module),
                    on_device=on_device,
                    last_used=0,
                )
        return module

    def _forget(self, key: int) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def size_of(self, module: nn.Module) -> int:
        """Bytes of a network (registered or not)."""
        entry = self._entries.get(id(module))
        return entry.size if entry else module_size_bytes(module)

    def loaded_models(self) -> list[LoadedModelInfo]:
        """Registered networks, most recently used first."""
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: -e.last_used)
            return [LoadedModelInfo(e.name, e.size, e.on_device) for e in entries if e.ref() is not None]

    def resident_bytes(self) -> int:
        """Bytes of registered networks currently on the compute device."""
        with self._lock:
            return sum(e.size for e in self._entries.values() if e.on_device and e.ref() is not None)

    # shared loads -------------------------------------------------------------------------------
    def remember_load(self, key: Hashable, *objects: Any) -> None:
        """Record what loading ``key`` produced (weakly; ``None`` entries stay ``None``)."""
        with self._lock:
            self._files[key] = tuple(None if obj is None else weakref.ref(obj) for obj in objects)

    def reuse_load(self, key: Hashable) -> tuple[Any, ...] | None:
        """What an earlier load of ``key`` produced, if every part of it is still alive."""
        with self._lock:
            refs = self._files.get(key)
            if refs is None:
                return None
            objects = tuple(None if ref is None else ref() for ref in refs)
            if any(ref is not None and obj is None for ref, obj in zip(refs, objects)):
                del self._files[key]
                return None
            return objects

    # placement ----------------------------------------------------------------------------------
    def load(self, module: nn.Module, name: str = "") -> nn.Module:
        """Make ``module`` resident on the compute device, offloading LRU others to fit the budget."""
        with self._lock:
            self.register(module, name)
            entry = self._entries[id(module)]
            entry.last_used = next(self._clock)
            if not entry.on_device:
                self._make_room(entry.size, keep=id(module))
                module.to(self.device)
                entry.on_device = True
            elif self.lowvram:
                self._make_room(0, keep=id(module))
        return module

    def offload(self, module: nn.Module) -> None:
        """Move a network back to the offload device."""
        with self._lock:
            entry = self._entries.get(id(module))
            if entry is not None and entry.on_device:
                self._evict(entry)

    def unload_all(self) -> None:
        """Offload every registered network (e.g. before a large VAE decode)."""
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.on_device:
                    self._evict(entry)

    def free_memory_bytes(self) -> int:
        """Memory available for activations on the compute device, within the budget if one is set."""
        free = devices.free_memory_bytes(self.device)
        if self.vram_budget_bytes is not None:
            free = min(free, max(0, self.vram_budget_bytes - self.resident_bytes()))
        return free

    def _make_room(self, needed: int, keep: int) -> None:
        if self.lowvram:
            limit = 0
        elif self.vram_budget_bytes is not None:
            limit = self.vram_budget_bytes
        else:
            if self.device == self.offload_device:
                return
            limit = self.resident_bytes() + devices.free_memory_bytes(self.device)
        candidates = sorted(
            (e for k, e in self._entries.items() if e.on_device and k != keep), key=lambda e: e.last_used
        )
        for entry in candidates:
            if self.resident_bytes() + needed <= limit:
                break
            self._evict(entry)

    def _evict(self, entry: _Entry) -> None:
        module = entry.ref()
        if module is not None and self.offload_device != self.device:
            module.to(self.offload_device)
        entry.on_device = False


def _module_device(module: nn.Module) -> torch.device:
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return torch.device("cpu")
