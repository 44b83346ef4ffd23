"""Image upscale models (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, Real-CUGAN...) through spandrel.

spandrel detects the architecture from a state dict's keys and builds the network; we read the
file safely (safetensors, or ``torch.load(weights_only=True)``), place it through the model
manager and run it in overlapping, cross-faded tiles (``diffusion.vae.tiled_apply``), halving the
tile on out-of-memory errors down to ``MIN_TILE``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffusion.checkpoint.errors import CheckpointError
from diffusion.checkpoint.files import read_state_dict
from diffusion.devices import is_out_of_memory
from diffusion.memory import ModelManager
from diffusion.vae import tile_count, tiled_apply

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
MIN_TILE = 128  # ComfyUI gives up below this; smaller tiles cost more overlap than they save

# Architectures whose spandrel code calls torchvision at run time (import time is handled below).
_TORCHVISION_ARCHES = frozenset({"LaMa", "RestoreFormer"})
_TORCHVISION_STAND_INS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")

Progress = Callable[[int, int], None]


class UpscaleModelError(CheckpointError):
    """A file that is not a single-image model spandrel knows, or an image it cannot take."""


def _torchvision_missing(*_args: Any, **_kwargs: Any) -> Any:
    raise UpscaleModelError(
        "this model architecture needs torchvision, which is not installed "
        "(a PyPI torchvision does not match the CPU torch build)"
    )


def _torchvision_importable() -> bool:
    """A torchvision is installed, or one is already imported (whatever ``import`` would return)."""
    return "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None


def _import_spandrel() -> types.ModuleType:
    """Import spandrel even where torchvision is absent.

    spandrel's package import pulls in every architecture, and two of them (LaMa, RestoreFormer:
    inpainting and face restoration, not upscalers) import two torchvision functions they call only
    at run time. Without torchvision we lend stand-ins that raise a clear error when called, only
    for the duration of the import, so ``import torchvision`` elsewhere still fails as it should.
    """
    if "spandrel" in sys.modules or _torchvision_importable():
        return importlib.import_module("spandrel")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.rotate = functional.normalize = _torchvision_missing  # type: ignore[attr-defined]
    functional.InterpolationMode = types.SimpleNamespace(BILINEAR="bilinear")  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    root = types.ModuleType("torchvision")
    root.transforms = transforms  # type: ignore[attr-defined]
    lent = dict(zip(_TORCHVISION_STAND_INS, (root, transforms, functional)))
    sys.modules.update(lent)
    try:
        return importlib.import_module("spandrel")
    finally:
        for name in _TORCHVISION_STAND_INS:
            if sys.modules.get(name) is lent[name]:
                del sys.modules[name]


@dataclass(frozen=True)
class UpscaleModel:
    """The UPSCALE_MODEL value: a spandrel ``ImageModelDescriptor`` placed by the model manager."""

    descriptor: Any  # spandrel.ImageModelDescriptor (imported lazily, see _import_spandrel)
    manager: ModelManager
    name: str = ""

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale)

    @property
    def architecture(self) -> str:
        return str(self.descriptor.architecture.name)

    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self.descriptor.model)


def _strip_data_parallel(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Some SwinIR releases were saved from ``nn.DataParallel``: every key starts with ``module.``."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return state_dict


def load_upscale_model(path: str | Path, manager: ModelManager) -> UpscaleModel:
    """Read an upscale model file and build its network (architecture detected by spandrel)."""
    path = Path(path)
    state_dict, _metadata = read_state_dict(path)
    return upscale_model_from_state_dict(_strip_data_parallel(state_dict), manager, path.name)


def upscale_model_from_state_dict(
    state_dict: dict[str, torch.Tensor], manager: ModelManager, name: str = ""
) -> UpscaleModel:
    spandrel = _import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state_dict)
    except spandrel.UnsupportedModelError as exc:
        raise UpscaleModelError(f"{name or 'the file'} is not an upscale model architecture spandrel knows") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscaleModelError(
            f"{name or 'the file'} is a {descriptor.architecture.name} model that needs a mask; "
            "an upscale model must be a single-image model"
        )
    if descriptor.architecture.id in _TORCHVISION_ARCHES and not _torchvision_importable():
        _torchvision_missing()
    descriptor.eval()
    dtype = manager.unet_dtype()
    if (dtype == torch.float16 and not descriptor.supports_half) or (
        dtype == torch.bfloat16 and not descriptor.supports_bfloat16
    ):
        dtype = torch.float32
    descriptor.model.to(dtype=dtype)
    manager.register(descriptor.model, f"{name} (upscale)" if name else "upscale model")
    return UpscaleModel(descriptor, manager, name)


def upscale_image(
    model: UpscaleModel,
    image: torch.Tensor,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    progress: Progress | None = None,
    min_tile: int = MIN_TILE,
) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` in 0..1 → IMAGE ``scale``× larger, clamped to 0..1.

    Runs in ``tile``-pixel tiles with ``overlap`` pixels cross-faded; on out-of-memory the tile is
    halved and the image started again (``progress(done, total)`` restarts with the new count),
    until the tile would fall below ``min_tile``, when the error is raised.
    """
    descriptor = model.descriptor
    pixels = _model_input(image, descriptor.input_channels)
    model.manager.load(descriptor.model)
    device, dtype = model.manager.device, descriptor.dtype

    def run(piece: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return descriptor(piece.to(device, dtype))

    while True:
        try:
            upscaled = _run_tiles(run, pixels, tile, overlap, model.scale, progress)
            break
        except Exception as exc:
            if not is_out_of_memory(exc) or tile // 2 < min_tile:
                raise
            tile //= 2
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if upscaled.shape[1] == 1:  # grey models: IMAGE stays RGB for the nodes downstream
        upscaled = upscaled.expand(-1, 3, -1, -1)
    return upscaled.movedim(1, -1).clamp(0.0, 1.0)


def _run_tiles(
    run: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    tile: int,
    overlap: int,
    scale: int,
    progress: Progress | None,
) -> torch.Tensor:
    """One pass over every image in tiles of one size, reporting each tile."""
    total = pixels.shape[0] * tile_count(pixels.shape[2], pixels.shape[3], tile, overlap)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return torch.cat([tiled_apply(run, sample[None], tile, overlap, 1, scale, on_tile=step) for sample in pixels])


def _model_input(image: torch.Tensor, channels: int) -> torch.Tensor:
    """IMAGE ``[B,H,W,C]`` → ``[B,channels,H,W]`` (alpha dropped; grey models get luminance)."""
    if image.ndim != 4:
        raise UpscaleModelError(f"expected an IMAGE [B,H,W,C], got shape {tuple(image.shape)}")
    rgb = image[..., :3].movedim(-1, 1).float()
    if channels == 3 and rgb.shape[1] == 3:
        return rgb
    if channels == 1:
        if rgb.shape[1] == 1:
            return rgb
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (rgb * weights).sum(1, keepdim=True)
    if channels == 3 and rgb.shape[1] == 1:
        return rgb.expand(-1, 3, -1, -1)
    raise UpscaleModelError(f"the model takes {channels}-channel images; this image has {image.shape[-1]}")
