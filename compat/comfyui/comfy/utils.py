"""ComfyUI's `comfy.utils` for node packs: progress bars, resizing and safe model-file loading.

ProgressBar reports through `engine.runtime.report_progress`, which knows the running prompt and
node from a context variable (ComfyUI uses a global hook) and raises InterruptedByUser when the
prompt was interrupted. Model files are read without unpickling code.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engine.runtime import report_progress

PROGRESS_BAR_ENABLED = True
_SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


# ---- progress -------------------------------------------------------------------------------
def _encode_preview(preview: Any) -> tuple[str, bytes] | None:
    """ComfyUI's ("JPEG" | "PNG", PIL image, max_size) -> (format, encoded bytes)."""
    if preview is None:
        return None
    if not isinstance(preview, (tuple, list)) or len(preview) < 2:
        raise TypeError("preview must be (format, image[, max_size])")
    image_format, image = str(preview[0]).upper(), preview[1]
    if image_format not in ("JPEG", "PNG"):
        raise ValueError(f"preview format must be JPEG or PNG, not {image_format!r}")
    if isinstance(image, (bytes, bytearray)):
        return image_format, bytes(image)
    max_size = preview[2] if len(preview) > 2 else None
    if max_size:
        image = image.copy()
        image.thumbnail((int(max_size), int(max_size)))
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    return image_format, buffer.getvalue()


class ProgressBar:
    """Progress of the running node: `update(n)` advances, `update_absolute(v, total, preview)` sets.

    `node_id` is accepted for compatibility and ignored: the engine knows which node is running.
    Outside a node call updates are counted but reported nowhere.
    """

    def __init__(self, total: int, node_id: Any = None) -> None:
        self.total = int(total)
        self.current = 0
        self.node_id = node_id

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = int(total)
        self.current = min(int(value), self.total) if self.total > 0 else int(value)
        report_progress(self.current, self.total, _encode_preview(preview))

    def update(self, value: int) -> None:
        self.update_absolute(self.current + int(value))


def set_progress_bar_enabled(enabled: bool) -> None:
    """Accepted and ignored: progress goes to the engine's listeners, never to a global hook."""


# ---- tensors --------------------------------------------------------------------------------
def _center_crop(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    old_h, old_w = samples.shape[-2:]
    old_aspect, new_aspect = old_w / old_h, width / height
    if old_aspect > new_aspect:
        keep = round(old_w * new_aspect / old_aspect)
        x0 = (old_w - keep) // 2
        return samples[..., :, x0:x0 + keep]
    if old_aspect < new_aspect:
        keep = round(old_h * old_aspect / new_aspect)
        y0 = (old_h - keep) // 2
        return samples[..., y0:y0 + keep, :]
    return samples


def _lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Lanczos through Pillow, per image; works for 1, 3 or 4 channels in 0..1 (as ComfyUI)."""
    from PIL import Image

    if samples.shape[1] not in (1, 3, 4):
        raise ValueError(f"lanczos needs 1, 3 or 4 channels, got {samples.shape[1]}")
    frames = []
    for sample in samples:
        array = np.clip(255.0 * sample.movedim(0, -1).float().cpu().numpy(), 0, 255).astype(np.uint8)
        picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        resized = np.asarray(picture.resize((width, height), Image.LANCZOS), dtype=np.float32) / 255.0
        frames.append(torch.from_numpy(resized if resized.ndim == 3 else resized[..., None]).movedim(-1, 0))
    return torch.stack(frames).to(device=samples.device, dtype=samples.dtype)


def common_upscale(samples: torch.Tensor, width: int, height: int, upscale_method: str,
                   crop: str) -> torch.Tensor:
    """Resize channels-first `[B,C,H,W]` to height×width; crop "center" or "disabled".

    Methods: nearest-exact, bilinear, area, bicubic, bislerp (diffusion.latent_ops) and lanczos.
    """
    if upscale_method == "lanczos":
        if crop not in ("disabled", "center"):
            raise ValueError(f"crop must be 'disabled' or 'center', not {crop!r}")
        source = _center_crop(samples, width, height) if crop == "center" else samples
        return _lanczos(source, width, height)
    from diffusion.latent_ops import resize_samples

    return resize_samples(samples, width, height, upscale_method, crop)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    from diffusion.latent_ops import bislerp as latent_bislerp

    return latent_bislerp(samples, width, height)


def lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return _lanczos(samples, width, height)


def get_tiled_scale_steps(width: int, height: int, tile_x: int, tile_y: int, overlap: int) -> int:
    """How many tiles tiled_scale calls its function for (for a ProgressBar total)."""
    return (math.ceil(max(height - overlap, 1) / (tile_y - overlap))
            * math.ceil(max(width - overlap, 1) / (tile_x - overlap)))


def _feather(height: int, width: int, feather: int) -> torch.Tensor:
    """Weights rising linearly over `feather` pixels at every edge of a tile."""
    ramp_y = torch.ones(height)
    ramp_x = torch.ones(width)
    for t in range(min(feather, height // 2 + 1)):
        ramp_y[t] = ramp_y[-1 - t] = min(ramp_y[t].item(), (t + 1) / feather)
    for t in range(min(feather, width // 2 + 1)):
        ramp_x[t] = ramp_x[-1 - t] = min(ramp_x[t].item(), (t + 1) / feather)
    return ramp_y[:, None] * ramp_x[None, :]


def tiled_scale(samples: torch.Tensor, function: Callable[[torch.Tensor], torch.Tensor], tile_x: int = 64,
                tile_y: int = 64, overlap: int = 8, upscale_amount: float = 4, out_channels: int = 3,
                output_device: Any = "cpu", pbar: ProgressBar | None = None) -> torch.Tensor:
    """Apply `function` (e.g. an upscale model) to overlapping tiles of `[B,C,H,W]` and blend them.

    Each tile's output is `upscale_amount` times larger; overlaps are blended with linear
    feathering, so seams do not show. `pbar.update(1)` is called once per tile.
    """
    if overlap >= min(tile_x, tile_y):
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {tile_x}x{tile_y}")
    height, width = samples.shape[-2:]
    out_h, out_w = round(height * upscale_amount), round(width * upscale_amount)
    results = []
    for sample in samples:
        image = sample[None]
        total = torch.zeros((1, out_channels, out_h, out_w), device=output_device)
        weight = torch.zeros((1, 1, out_h, out_w), device=output_device)
        ys = range(0, max(height - overlap, 1), tile_y - overlap)
        xs = range(0, max(width - overlap, 1), tile_x - overlap)
        for y0 in ys:
            for x0 in xs:
                y = max(0, min(height - tile_y, y0))
                x = max(0, min(width - tile_x, x0))
                tile = image[:, :, y:y + tile_y, x:x + tile_x]
                result = function(tile).to(output_device, torch.float32)
                th, tw = result.shape[-2:]
                mask = _feather(th, tw, max(1, round(overlap * upscale_amount))).to(output_device)
                oy, ox = round(y * upscale_amount), round(x * upscale_amount)
                total[:, :, oy:oy + th, ox:ox + tw] += result * mask
                weight[:, :, oy:oy + th, ox:ox + tw] += mask
                if pbar is not None:
                    pbar.update(1)
        results.append(total / weight.clamp_min(1e-8))
    return torch.cat(results).to(samples.dtype)


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int, dim: int = 0) -> torch.Tensor:
    """Repeat (or cut) `tensor` along `dim` to exactly `batch_size` entries."""
    size = tensor.shape[dim]
    if size > batch_size:
        return tensor.narrow(dim, 0, batch_size)
    if size < batch_size:
        repeats = [1] * tensor.ndim
        repeats[dim] = -(-batch_size // size)
        return tensor.repeat(repeats).narrow(dim, 0, batch_size)
    return tensor


def state_dict_prefix_replace(state_dict: dict[str, Any], replace_prefix: dict[str, str],
                              filter_keys: bool = False) -> dict[str, Any]:
    """Rename keys starting with each prefix; with `filter_keys` only renamed keys are returned.

    Unlike ComfyUI this never mutates `state_dict`: it returns a new dict.
    """
    out = {} if filter_keys else dict(state_dict)
    for old, new in replace_prefix.items():
        for key in [k for k in state_dict if k.startswith(old)]:
            if not filter_keys:
                out.pop(key, None)
            out[new + key[len(old):]] = state_dict[key]
    return out


# ---- model files ----------------------------------------------------------------------------
def load_torch_file(ckpt: str | Path, safe_load: bool = False, device: Any = None,
                    return_metadata: bool = False) -> Any:
    """Tensors of a model file: safetensors, or torch.load(weights_only=True) — never full pickle.

    `safe_load` is accepted for compatibility; loading is always safe. A pickle that needs code
    to unpickle is refused with diffusion's CheckpointError. A "state_dict" wrapper is unwrapped.
    """
    from diffusion.checkpoint.errors import CheckpointError

    path = Path(ckpt)
    target = torch.device(device) if device is not None else torch.device("cpu")
    metadata: dict[str, str] | None = None
    if path.suffix.lower() in _SAFETENSORS_SUFFIXES:
        import safetensors

        with safetensors.safe_open(str(path), framework="pt", device=str(target)) as handle:
            metadata = handle.metadata()
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    else:
        import pickle

        try:
            loaded = torch.load(str(path), map_location=target, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{path.name} needs arbitrary code to unpickle and was refused for "
                                  "safety; convert it to .safetensors with a trusted tool") from exc
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    return (state, metadata) if return_metadata else state


def save_torch_file(sd: dict[str, torch.Tensor], ckpt: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a state dict as .safetensors, atomically (ComfyUI always writes safetensors here)."""
    from diffusion.checkpoint.export import safetensors_file_bytes
    from engine.imagefiles import write_file_atomically

    write_file_atomically(Path(ckpt), safetensors_file_bytes(sd, metadata or {}))
