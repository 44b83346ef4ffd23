"""Classifier-free guidance over ComfyUI-style conditioning lists.

``CFGDenoiser`` turns a ModelHandle plus positive/negative CONDITIONING into the ``model(x, σ)``
callable the samplers expect. Each conditioning entry may cover an area or a mask, carry a
strength and be limited to part of the schedule; all entries active at a step are evaluated in as
few model calls as possible (cond and uncond together) and their x0 estimates averaged with the
entries' weights before guidance: x0 = uncond + cfg·(cond − uncond).

A model's ComfyUI ``model_options`` hooks run here as in ComfyUI's ``samplers.py``: the UNet
function wrapper around each model call, then pre-cfg functions, the cfg function and post-cfg
functions on the guided result (docs/MODEL_INTERFACE.md §2).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from diffusion.sampling.model_sampling import DiscreteModelSampling

# Area edges not touching the latent border fade in over this many latent pixels (ComfyUI).
AREA_FEATHER = 8
# Context lengths are padded by repetition to a common multiple, at most this many times longer.
MAX_CONTEXT_REPEAT = 4
# Scaled SD latent of a mid-grey image: what an inpaint model sees as "masked image" by default.
BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)
# percent_to_sigma(0): the upper σ bound of an entry active from the very start.
_ALWAYS = 999999999.9


class ConditioningError(ValueError):
    """A conditioning entry that cannot be used with this latent or model."""


@dataclass
class CondChunk:
    """One conditioning entry resolved against a latent: everything a model call needs."""

    context: torch.Tensor
    area: tuple[int, int, int, int] | None  # (h, w, y, x) in latent pixels
    weight: torch.Tensor  # [B or 1, 1, h, w] multiplier over the area (mask × strength × feather)
    sigma_high: float  # active while sigma_low <= σ <= sigma_high
    sigma_low: float
    y: torch.Tensor | None = None
    concat: torch.Tensor | None = None  # full-size, cropped per call
    control: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    uuid: uuid.UUID = field(default_factory=uuid.uuid4)  # ComfyUI's per-cond id (transformer_options["uuids"])

    def active(self, sigma: float) -> bool:
        return self.sigma_low <= sigma <= self.sigma_high


def _percent(options: dict[str, Any], name: str, comfy_name: str, default: float) -> float:
    value = options.get(name, options.get(comfy_name, default))
    return float(default if value is None else value)


def _resolve_area(area: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """ConditioningSetArea stores (h, w, y, x) in latent pixels; the percentage form is scaled."""
    if isinstance(area, (list, tuple)) and area and area[0] == "percentage":
        h, w, y, x = (float(v) for v in area[1:5])
        area = (max(1, round(h * height)), max(1, round(w * width)), round(y * height), round(x * width))
    try:
        h, w, y, x = (int(v) for v in area)
    except (TypeError, ValueError):
        raise ConditioningError(f"conditioning area must be (height, width, y, x), got {area!r}") from None
    y, x = min(max(y, 0), height - 1), min(max(x, 0), width - 1)
    return min(h, height - y), min(w, width - x), y, x


def _mask_to_latent(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    mask = mask.float()
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim == 4 and mask.shape[1] != 1:
        mask = mask.mean(dim=1, keepdim=True)
    if mask.shape[-2:] != (height, width):
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
    return mask


def _bounds(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    nonzero = (mask > 0).any(dim=0).any(dim=0).nonzero()
    if nonzero.numel() == 0:
        return None
    y0, x0 = nonzero.min(dim=0).values.tolist()
    y1, x1 = nonzero.max(dim=0).values.tolist()
    return y1 - y0 + 1, x1 - x0 + 1, y0, x0


def _feather(weight: torch.Tensor, area: tuple[int, int, int, int], height: int, width: int) -> torch.Tensor:
    """Fade area edges that lie inside the image so area prompts blend into their surroundings."""
    h, w, y, x = area
    weight = weight.clone()
    for t in range(AREA_FEATHER):
        factor = (t + 1) / AREA_FEATHER
        if y != 0:
            weight[:, :, t : t + 1, :] *= factor
        if h + y < height:
            weight[:, :, h - 1 - t : h - t, :] *= factor
        if x != 0:
            weight[:, :, :, t : t + 1] *= factor
        if w + x < width:
            weight[:, :, :, w - 1 - t : w - t] *= factor
    return weight


def _repeat_to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    if t.shape[0] == batch:
        return t
    if t.shape[0] > batch:
        return t[:batch]
    reps = math.ceil(batch / t.shape[0])
    return t.repeat(reps, *([1] * (t.ndim - 1)))[:batch]


def inpaint_concat(
    options: dict[str, Any],
    latent_shape: torch.Size,
    latent_image: torch.Tensor | None,
    denoise_mask: torch.Tensor | None,
    latent_format: Any = None,
) -> torch.Tensor:
    """Extra input channels of a 9-channel inpaint model: [mask, masked-image latent].

    Taken from the conditioning's ``concat_mask``/``concat_latent_image`` (InpaintModelConditioning;
    a raw latent, scaled here by `latent_format` as ComfyUI's concat_cond does) or else from the
    latent's noise mask and the (already scaled) latent itself; with neither, the whole image is
    "to be painted" over a grey image.
    """
    batch, _, height, width = latent_shape
    image = options.get("concat_latent_image")
    if image is not None and latent_format is not None:
        image = latent_format.process_in(image.float())
    if image is None:
        image = latent_image
    mask = options.get("concat_mask", denoise_mask)
    if mask is not None:
        mask = _mask_to_latent(mask, height, width).round()
        if image is None:
            image = torch.zeros(latent_shape)
        if image.shape[-2:] != (height, width):
            image = F.interpolate(image.float(), size=(height, width), mode="bilinear", align_corners=False)
        masked = image.float()
    else:
        mask = torch.ones((1, 1, height, width))
        blank = torch.tensor(BLANK_INPAINT_LATENT)[: latent_shape[1]]
        masked = torch.ones((1, latent_shape[1], height, width)) * blank.reshape(1, -1, 1, 1)
    return torch.cat([_repeat_to_batch(mask, batch), _repeat_to_batch(masked, batch)], dim=1)


def prepare_conds(
    conditioning: list,
    model: Any,
    ms: DiscreteModelSampling,
    latent_shape: torch.Size,
    *,
    latent_image: torch.Tensor | None = None,
    denoise_mask: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[CondChunk]:
    """Resolve a CONDITIONING list against a latent shape: areas, masks, ranges, ADM, concat."""
    batch, _, height, width = latent_shape
    chunks: list[CondChunk] = []
    for index, entry in enumerate(conditioning or []):
        try:
            context, options = entry[0], dict(entry[1])
        except (TypeError, IndexError, KeyError):
            raise ConditioningError(f"conditioning entry {index} is not a [tensor, dict] pair") from None
        if not isinstance(context, torch.Tensor) or context.ndim != 3:
            raise ConditioningError(f"conditioning entry {index}: expected a [B, tokens, channels] tensor")
        area = _resolve_area(options["area"], height, width) if options.get("area") is not None else None
        weight = torch.ones((1, 1, height, width))
        mask = options.get("mask")
        if mask is not None:
            mask = _mask_to_latent(mask, height, width) * float(options.get("mask_strength", 1.0))
            if options.get("set_area_to_bounds"):
                area = _bounds(mask) or area
            weight = mask
        if area is not None:
            h, w, y, x = area
            weight = weight[:, :, y : y + h, x : x + w]
            if mask is None:
                weight = _feather(weight, area, height, width)
        weight = weight * float(options.get("strength", 1.0))
        if weight.shape[0] not in (1, batch):
            weight = _repeat_to_batch(weight, batch)
        start = _percent(options, "timestep_start", "start_percent", 0.0)
        end = _percent(options, "timestep_end", "end_percent", 1.0)
        concat = None
        if getattr(model, "inpaint", False):
            concat = inpaint_concat(options, latent_shape, latent_image, denoise_mask, model.latent_format)
            concat = concat.to(device, dtype)
        y_vec = model.encode_adm(options, batch, width * 8, height * 8)
        control = options.get("control")
        if hasattr(control, "pre_run"):  # ComfyUI's pre_run_control: σ window, model checks
            control.pre_run(model, ms.percent_to_sigma)
        chunks.append(
            CondChunk(
                context=context.to(device, dtype),
                area=area,
                weight=weight.to(device, dtype),
                sigma_high=ms.percent_to_sigma(start),
                sigma_low=ms.percent_to_sigma(end),
                y=None if y_vec is None else y_vec.to(device, dtype),
                concat=concat,
                control=control,
                options=options,
            )
        )
    return chunks


def add_uncond_areas(positive: list[CondChunk], negative: list[CondChunk]) -> list[CondChunk]:
    """Give each area-limited positive entry a negative over the same area (ComfyUI does this so
    that guidance inside an area compares like with like): a copy of the first whole-image
    negative, restricted to that area and weighted like the positive."""
    plain = next((c for c in negative if c.area is None), None)
    if plain is None:
        return negative
    extra = []
    for c in positive:
        if c.area is None or any(n.area == c.area for n in negative):
            continue
        extra.append(CondChunk(plain.context, c.area, c.weight, c.sigma_high, c.sigma_low, plain.y, plain.concat,
                               plain.control, plain.options))
    return negative + extra


def _context_length(lengths: list[int]) -> int | None:
    common = math.lcm(*lengths)
    return common if common // min(lengths) <= MAX_CONTEXT_REPEAT else None


class CFGDenoiser:
    """``model(x, σ) -> x0`` with classifier-free guidance, batching cond and uncond.

    ``max_batch`` caps the number of latent samples per model call (memory); ``None`` batches
    everything compatible into one call.
    """

    def __init__(
        self,
        model: Any,
        ms: DiscreteModelSampling,
        positive: list[CondChunk],
        negative: list[CondChunk],
        cfg: float,
        max_batch: int | None = None,
    ) -> None:
        self.model, self.ms, self.cfg, self.max_batch = model, ms, float(cfg), max_batch
        self.positive = positive
        self.negative = add_uncond_areas(positive, negative)
        self.model_calls = 0
        self._input_cache: dict[tuple, tuple] = {}
        self.model_options: dict[str, Any] = getattr(model, "model_options", None) or {}
        self._guidance_hooked = any(
            name in self.model_options
            for name in ("sampler_cfg_function", "sampler_pre_cfg_function", "sampler_post_cfg_function")
        )

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, uncond_sink: dict | None = None,
                 **_: Any) -> torch.Tensor:
        """Guided x0. A CFG++ sampler passes ``uncond_sink`` to also receive the uncond x0, which is
        then computed even at cfg 1 (ComfyUI's samplers set disable_cfg1_optimization for that)."""
        skip_uncond = (uncond_sink is None and math.isclose(self.cfg, 1.0)
                       and not self.model_options.get("disable_cfg1_optimization", False))
        if not self._guidance_hooked:
            if skip_uncond:
                return self.predict([self.positive], x, sigma)[0]
            cond, uncond = self.predict([self.positive, self.negative], x, sigma)
            if uncond_sink is not None:
                uncond_sink["uncond_denoised"] = uncond
            return uncond + (cond - uncond) * self.cfg
        return self._guided_with_hooks(x, sigma, skip_uncond, uncond_sink)

    def _guided_with_hooks(self, x: torch.Tensor, sigma: torch.Tensor, skip_uncond: bool,
                           uncond_sink: dict | None = None) -> torch.Tensor:
        """ComfyUI's ``sampling_function`` / ``cfg_function`` with the model's cfg hooks."""
        options, scale = self.model_options, self.cfg
        conds = [self.positive, None if skip_uncond else self.negative]
        if skip_uncond:  # ComfyUI hands hooks an all-zero uncond when it skips that pass
            out = [self.predict([self.positive], x, sigma)[0], torch.zeros_like(x)]
        else:
            out = self.predict([self.positive, self.negative], x, sigma)
        base = getattr(self.model, "model", self.model)  # ComfyUI passes its BaseModel as "model"
        for function in options.get("sampler_pre_cfg_function", ()):
            out = function({"conds": conds, "conds_out": out, "cond_scale": scale, "timestep": sigma, "input": x,
                            "sigma": sigma, "model": base, "model_options": options})
        cond, uncond = out[0], out[1]
        if uncond_sink is not None:
            uncond_sink["uncond_denoised"] = uncond
        return self.cfg_function(x, sigma, cond, uncond, scale, conds[0], conds[1])

    def cfg_function(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                     scale: float, cond_chunks: list[CondChunk] | None,
                     uncond_chunks: list[CondChunk] | None) -> torch.Tensor:
        """ComfyUI's ``cfg_function``: the model's sampler_cfg_function (else plain CFG) on the cond
        and uncond x0, then its post-CFG hooks. Guiders with other mixes (DualCFG) reuse it."""
        options = self.model_options
        base = getattr(self.model, "model", self.model)
        if "sampler_cfg_function" in options:
            args = {"cond": x - cond, "uncond": x - uncond, "cond_scale": scale, "timestep": sigma, "input": x,
                    "sigma": sigma, "cond_denoised": cond, "uncond_denoised": uncond, "model": base,
                    "model_options": options, "input_cond": cond_chunks, "input_uncond": uncond_chunks}
            result = x - options["sampler_cfg_function"](args)
        else:
            result = uncond + (cond - uncond) * scale
        for function in options.get("sampler_post_cfg_function", ()):
            result = function({"denoised": result, "cond": cond_chunks, "uncond": uncond_chunks, "cond_scale": scale,
                               "model": base, "uncond_denoised": uncond, "cond_denoised": cond, "sigma": sigma,
                               "model_options": options, "input": x})
        return result

    def predict(self, cond_lists: list[list[CondChunk]], x: torch.Tensor, sigma: torch.Tensor) -> list[torch.Tensor]:
        """Weighted average x0 of each conditioning list at (x, σ)."""
        pending = [(i, c) for i, chunks in enumerate(cond_lists) for c in chunks]
        if any(c.sigma_low > 0.0 or c.sigma_high < _ALWAYS for _, c in pending):
            s = float(sigma.reshape(-1)[0])  # reads σ back from the device: only for timestep ranges
            pending = [(i, c) for i, c in pending if c.active(s)]
        totals = [torch.zeros_like(x) for _ in cond_lists]
        counts = [torch.full_like(x[:, :1], 1e-37) for _ in cond_lists]
        while pending:
            group, pending = self._take_group(pending, x.shape[0])
            self._run_group(group, x, sigma, totals, counts)
        return [t / c for t, c in zip(totals, counts)]

    def _key(self, chunk: CondChunk) -> tuple:
        area = chunk.area[:2] if chunk.area else None
        y = None if chunk.y is None else tuple(chunk.y.shape[1:])
        return (area, chunk.context.shape[2], y, chunk.concat is not None, id(chunk.control),
                id(chunk.options.get("gligen")))

    def _take_group(self, pending: list, batch: int) -> tuple[list, list]:
        """The first pending entry plus every compatible one that fits the batch limit."""
        first_key = self._key(pending[0][1])
        group, rest, lengths = [], [], []
        limit = self.max_batch or math.inf
        for item in pending:
            chunk = item[1]
            fits = (len(group) + 1) * batch <= limit or not group
            candidate = lengths + [chunk.context.shape[1]]
            if fits and self._key(chunk) == first_key and _context_length(candidate) is not None:
                group.append(item)
                lengths = candidate
            else:
                rest.append(item)
        return group, rest

    def _batched_inputs(self, group, batch: int):
        """Context, y and concat for a group, concatenated once and reused every step."""
        key = (tuple(id(c) for _, c in group), batch)
        cached = self._input_cache.get(key)
        if cached is None:
            length = _context_length([c.context.shape[1] for _, c in group])
            contexts, ys, concats = [], [], []
            for _, c in group:
                context = _repeat_to_batch(c.context, batch)
                contexts.append(context.repeat(1, length // context.shape[1], 1))
                if c.y is not None:
                    ys.append(_repeat_to_batch(c.y, batch))
                if c.concat is not None:
                    concats.append(_crop(c.concat, c.area))
            # The model's compute dtype once here, rather than a cast of the text context every step.
            dtype = getattr(self.model, "compute_dtype", None) or contexts[0].dtype
            cached = (torch.cat(contexts).to(dtype), torch.cat(ys).to(dtype) if ys else None,
                      torch.cat(concats) if concats else None)
            self._input_cache[key] = cached
        return cached

    def _apply_model(self, input: torch.Tensor, timestep: torch.Tensor, **c: Any) -> torch.Tensor:
        """What a UNet function wrapper receives as ``apply_model``: (x, sigma, **c) → denoised."""
        return denoise(self.model, self.ms, input, timestep, **c)

    def _run_group(self, group, x, sigma, totals, counts) -> None:
        batch = x.shape[0]
        context, y, concat = self._batched_inputs(group, batch)
        xs = [_crop(x, c.area) for _, c in group]
        x_in = torch.cat(xs) if len(xs) > 1 else xs[0]
        sigma_in = sigma.repeat(len(group)) if len(group) > 1 else sigma
        control = group[0][1].control
        if control is not None and hasattr(control, "get_control"):
            # A ControlNet-like object computes its residuals for exactly this batch and step.
            x_c = self.ms.calculate_input(sigma_in, x_in)
            timestep = self.ms.timestep(sigma_in).float()
            control = control.get_control(x_c, timestep, context, y=y, sigma=sigma_in, batched_number=len(group))
        cond_or_uncond = [list_index for list_index, _ in group]
        transformer_options = dict(self.model_options.get("transformer_options", {}))
        transformer_options.update(
            cond_or_uncond=cond_or_uncond, uuids=[c.uuid for _, c in group], sigmas=sigma
        )
        gligen = group[0][1].options.get("gligen")
        if gligen is not None and gligen[0] == "position":  # GLIGEN boxes (diffusion.gligen.Gligen)
            patches = dict(transformer_options.get("patches") or {})
            patch = gligen[1].set_position(x_in.shape, gligen[2], x_in.device)
            patches["middle_patch"] = [*patches.get("middle_patch", ()), patch]
            transformer_options["patches"] = patches
        c: dict[str, Any] = {"c_crossattn": context, "control": control, "transformer_options": transformer_options}
        if y is not None:
            c["y"] = y
        if concat is not None:
            c["c_concat"] = concat
        wrapper = self.model_options.get("model_function_wrapper")
        if wrapper is None:
            denoised = self._apply_model(x_in, sigma_in, **c)
        else:
            args = {"input": x_in, "timestep": sigma_in, "c": c, "cond_or_uncond": cond_or_uncond}
            denoised = wrapper(self._apply_model, args)
        self.model_calls += 1
        for k, (list_index, c) in enumerate(group):
            part = denoised[k * batch : (k + 1) * batch]
            weight = c.weight
            if c.area is None:
                totals[list_index] += part * weight
                counts[list_index] += weight
            else:
                h, w, y0, x0 = c.area
                totals[list_index][:, :, y0 : y0 + h, x0 : x0 + w] += part * weight
                counts[list_index][:, :, y0 : y0 + h, x0 : x0 + w] += weight


def denoise(
    model: Any,
    ms: DiscreteModelSampling,
    x: torch.Tensor,
    sigma: torch.Tensor,
    c_crossattn: torch.Tensor,
    *,
    c_concat: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    control: Any = None,
    transformer_options: dict[str, Any] | None = None,
    **_: Any,
) -> torch.Tensor:
    """ComfyUI's ``BaseModel.apply_model``: the denoised latent for noisy `x` at `sigma` ``[B]``.

    Other keyword arguments (conds a pack added to ``c``) are accepted and ignored, as ComfyUI's
    models ignore conds they do not use.
    """
    x_c = ms.calculate_input(sigma, x)
    timestep = ms.timestep(sigma).float()
    out = model.apply_model(
        x_c, timestep, c_crossattn, y=y, concat=c_concat, control=control, transformer_options=transformer_options
    )
    return ms.calculate_denoised(sigma, out, x)


def _crop(t: torch.Tensor, area: tuple[int, int, int, int] | None) -> torch.Tensor:
    if area is None:
        return t
    h, w, y, x = area
    return t[:, :, y : y + h, x : x + w]
