"""VAE values: encode IMAGE → raw VAE latents and decode back, tiling when memory is short.

Latents here are the VAE's own (ComfyUI's LATENT convention); the diffusion model's latent format
scales them at the model boundary, not here.

Tiles overlap and are cross-faded with linear ramps, so seams do not show; a decode that does not
fit (estimated up front, or an out-of-memory error caught) falls back to tiles automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffusion.devices import is_out_of_memory
from diffusion.memory import ModelManager
from diffusion.models.vae import AutoencoderKL

# Peak activation bytes per latent cell / pixel and per dtype byte (ComfyUI's measured estimates,
# comfy/sd.py): decode ≈ 2178·h·w·64, encode ≈ 1767·H·W for one sample.
DECODE_BYTES_PER_CELL = 2178 * 64
ENCODE_BYTES_PER_PIXEL = 1767


@dataclass(frozen=True)
class Plan:
    """How a VAE call will run: samples per chunk, and tile size in latent cells (None: whole)."""

    batch_chunk: int
    tile: int | None


def _ramp(length: int, fade: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    weights = torch.ones(length)
    if fade > 0:
        ramp = (torch.arange(fade, dtype=torch.float32) + 0.5) / fade
        if fade_start:
            weights[:fade] = torch.minimum(weights[:fade], ramp)
        if fade_end:
            weights[-fade:] = torch.minimum(weights[-fade:], ramp.flip(0))
    return weights


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def tile_count(cells_h: int, cells_w: int, tile: int, overlap: int) -> int:
    """How many tiles :func:`tiled_apply` runs over a ``cells_h × cells_w`` grid."""
    overlap = max(0, min(overlap, tile // 2))
    return len(_tile_starts(cells_h, tile, overlap)) * len(_tile_starts(cells_w, tile, overlap))


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    in_per_cell: int,
    out_per_cell: int,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Apply a resolution-changing ``fn`` tile by tile over the latent grid and blend the overlaps.

    ``tile``/``overlap`` are in latent cells; a cell is ``in_per_cell`` input and ``out_per_cell``
    output pixels per side (decode: 1 → 8, encode: 8 → 1). Each output pixel is the weighted mean
    of the tiles covering it, weights ramping linearly to 0 across the overlap, so a pointwise
    ``fn`` is reproduced exactly and real networks show no seams. ``on_tile`` runs after each tile
    (progress); :func:`tile_count` says how many there will be.
    """
    batch, _, height, width = x.shape
    cells_h, cells_w = height // in_per_cell, width // in_per_cell
    overlap = max(0, min(overlap, tile // 2))
    output = weights_sum = None
    ys, xs = _tile_starts(cells_h, tile, overlap), _tile_starts(cells_w, tile, overlap)
    for y0 in ys:
        for x0 in xs:
            th, tw = min(tile, cells_h - y0), min(tile, cells_w - x0)
            piece = x[
                :, :, y0 * in_per_cell : (y0 + th) * in_per_cell, x0 * in_per_cell : (x0 + tw) * in_per_cell
            ]
            out = fn(piece).float()
            if output is None:
                output = torch.zeros(batch, out.shape[1], cells_h * out_per_cell, cells_w * out_per_cell)
                weights_sum = torch.zeros(1, 1, cells_h * out_per_cell, cells_w * out_per_cell)
            fade = overlap * out_per_cell
            wy = _ramp(out.shape[2], fade, y0 > 0, y0 + th < cells_h)
            wx = _ramp(out.shape[3], fade, x0 > 0, x0 + tw < cells_w)
            weight = (wy[:, None] * wx[None, :])[None, None]
            oy, ox = y0 * out_per_cell, x0 * out_per_cell
            output[:, :, oy : oy + out.shape[2], ox : ox + out.shape[3]] += out.cpu() * weight
            weights_sum[:, :, oy : oy + out.shape[2], ox : ox + out.shape[3]] += weight
            if on_tile is not None:
                on_tile()
    assert output is not None and weights_sum is not None
    return output / weights_sum


class VAEHandle:
    """The VAE value: pixels ``[B,H,W,C]`` in 0..1 ⇄ raw latents ``[B,4,H/8,W/8]``.

    Offers ComfyUI's ``VAE`` interface too (``first_stage_model``, ``spacial_compression_*``,
    ``get_sd``, ``latent_channels``, ``downscale_ratio``…); see docs/MODEL_INTERFACE.md §4.
    """

    def __init__(self, model: AutoencoderKL, manager: ModelManager, name: str = "") -> None:
        self.model = model
        self.manager = manager
        self.name = name
        manager.register(model, f"{name} (vae)" if name else "vae")

    @property
    def downscale(self) -> int:
        return self.model.config.downscale

    @property
    def compute_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def cache_size_bytes(self) -> int:
        return self.manager.size_of(self.model)

    # ComfyUI's names ------------------------------------------------------------------------------
    @property
    def first_stage_model(self) -> AutoencoderKL:
        """The network (LDM ``AutoencoderKL`` parameter names)."""
        return self.model

    @property
    def latent_channels(self) -> int:
        return self.model.config.z_channels

    @property
    def downscale_ratio(self) -> int:
        return self.downscale

    @property
    def upscale_ratio(self) -> int:
        return self.downscale

    @property
    def device(self) -> torch.device:
        return self.manager.device

    @property
    def vae_dtype(self) -> torch.dtype:
        return self.compute_dtype

    def spacial_compression_decode(self) -> int:
        """Pixels per latent cell along each side when decoding (ComfyUI's spelling)."""
        return self.downscale

    def spacial_compression_encode(self) -> int:
        return self.downscale

    def get_sd(self) -> dict[str, torch.Tensor]:
        """The VAE weights under LDM names (as saved under ``first_stage_model.`` in a checkpoint)."""
        return self.model.state_dict()

    def throw_exception_if_invalid(self) -> None:
        """ComfyUI checks for a checkpoint without a VAE here; a VAEHandle always has one."""

    # planning -----------------------------------------------------------------------------------
    def plan_decode(self, latent_shape: torch.Size | tuple[int, ...]) -> Plan:
        """Whole-image decode in as large batch chunks as fit, else 64-cell tiles."""
        cells = latent_shape[-2] * latent_shape[-1]
        per_sample = DECODE_BYTES_PER_CELL * cells * _itemsize(self.compute_dtype)
        return self._plan(latent_shape[0], per_sample, 64)

    def plan_encode(self, pixel_shape: torch.Size | tuple[int, ...]) -> Plan:
        """Whole-image encode in batch chunks as fit, else 64-cell (512 px) tiles."""
        per_sample = ENCODE_BYTES_PER_PIXEL * pixel_shape[1] * pixel_shape[2] * _itemsize(self.compute_dtype)
        return self._plan(pixel_shape[0], per_sample, 64)

    def _plan(self, batch: int, per_sample: int, tile: int) -> Plan:
        free = self.manager.free_memory_bytes()
        if per_sample <= free:
            return Plan(batch_chunk=max(1, min(batch, free // max(per_sample, 1))), tile=None)
        return Plan(batch_chunk=1, tile=tile)

    # public API ---------------------------------------------------------------------------------
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw latents → IMAGE; tiles automatically when the whole image would not fit."""
        self._check_latent(latent)
        plan = self.plan_decode(latent.shape)
        if plan.tile is not None:
            return self.decode_tiled(latent, plan.tile * self.downscale, 8 * self.downscale)
        try:
            return torch.cat([self._decode(chunk) for chunk in latent.split(plan.batch_chunk)])
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self._release_cached_memory()
            return self.decode_tiled(latent, 64 * self.downscale, 8 * self.downscale)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE → raw latents (posterior mean); tiles automatically when memory is short."""
        pixels = self._check_pixels(pixels)
        plan = self.plan_encode(pixels.shape)
        if plan.tile is not None:
            return self.encode_tiled(pixels, plan.tile * self.downscale, 8 * self.downscale)
        try:
            return torch.cat([self._encode(chunk) for chunk in pixels.split(plan.batch_chunk)])
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            self._release_cached_memory()
            return self.encode_tiled(pixels, 64 * self.downscale, 8 * self.downscale)

    def decode_tiled(self, latent: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        """Decode in overlapping tiles of ``tile_size`` pixels (``overlap`` pixels cross-faded)."""
        self._check_latent(latent)
        tile, fade = self._tile_cells(tile_size, overlap)
        model = self._prepare()

        def run(piece: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model.decode(piece.to(self.manager.device, self.compute_dtype))

        images = [tiled_apply(run, sample[None], tile, fade, 1, self.downscale) for sample in latent.float()]
        return self._to_image(torch.cat(images))

    def encode_tiled(self, pixels: torch.Tensor, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
        """Encode in overlapping tiles of ``tile_size`` pixels (``overlap`` pixels cross-faded)."""
        pixels = self._check_pixels(pixels)
        tile, fade = self._tile_cells(tile_size, overlap)
        model = self._prepare()
        x = pixels.movedim(-1, 1) * 2.0 - 1.0

        def run(piece: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model.encode(piece.to(self.manager.device, self.compute_dtype))

        latents = [tiled_apply(run, sample[None], tile, fade, self.downscale, 1) for sample in x]
        return torch.cat(latents).float()

    # internals ----------------------------------------------------------------------------------
    def _release_cached_memory(self) -> None:
        """After an OOM, give the allocator's cached blocks back before retrying in tiles."""
        if self.manager.device.type == "cuda":
            torch.cuda.empty_cache()

    def _tile_cells(self, tile_size: int, overlap: int) -> tuple[int, int]:
        if tile_size < 2 * self.downscale:
            raise ValueError(f"tile_size must be at least {2 * self.downscale} pixels")
        return tile_size // self.downscale, max(0, overlap) // self.downscale

    def _prepare(self) -> AutoencoderKL:
        return self.manager.load(self.model)

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        model = self._prepare()
        z = latent.float().to(self.manager.device, self.compute_dtype)
        with torch.no_grad():
            return self._to_image(model.decode(z))

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        model = self._prepare()
        x = (pixels.movedim(-1, 1) * 2.0 - 1.0).to(self.manager.device, self.compute_dtype)
        with torch.no_grad():
            return model.encode(x).float().cpu()

    def _check_latent(self, latent: torch.Tensor) -> None:
        channels = self.model.config.z_channels
        if latent.ndim != 4 or latent.shape[1] != channels:
            raise ValueError(f"this VAE decodes latents [B,{channels},h,w], got {tuple(latent.shape)}")

    def _check_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.ndim != 4 or pixels.shape[-1] < 3:
            raise ValueError(f"expected IMAGE [B,H,W,C] with C ≥ 3, got {tuple(pixels.shape)}")
        pixels = pixels[..., :3].float()
        # The VAE halves the size 3 times: crop to a multiple of 8 as ComfyUI does.
        h = pixels.shape[1] // self.downscale * self.downscale
        w = pixels.shape[2] // self.downscale * self.downscale
        if h == 0 or w == 0:
            raise ValueError(
                f"image of {pixels.shape[1]}×{pixels.shape[2]} is smaller than {self.downscale} px"
            )
        if (h, w) != pixels.shape[1:3]:
            top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
            pixels = pixels[:, top : top + h, left : left + w]
        return pixels

    @staticmethod
    def _to_image(decoded: torch.Tensor) -> torch.Tensor:
        return ((decoded.float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1).contiguous()


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
