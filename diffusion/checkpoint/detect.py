"""Family detection and architecture inference from the tensors themselves.

Every width and depth is read from shapes, so a tiny test checkpoint and a released file take the
same path. Only head counts and the prediction type are not in the shapes: they come from family
defaults, the ``latentgraph.arch`` metadata, file markers, or the caller's overrides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from diffusion.checkpoint.arch import (
    ADM_SCALARS,
    FAMILIES,
    HEAD_DEFAULTS,
    TEXT_PREFIXES,
    UPCAST_ATTENTION,
    Family,
)
from diffusion.checkpoint.errors import CheckpointError
from diffusion.models.unet import ADM_SCALAR_WIDTH, UNetConfig
from diffusion.models.vae import VAEConfig

Prediction = Literal["eps", "v_prediction"]

# ComfyUI's SD2 heuristic (comfy/supported_models.py SD20.model_type): v-models trained norm1 biases
# of the last output transformer to a larger spread. Documented there as uncertain; always overridable.
SD2_V_HEURISTIC_KEY = "output_blocks.11.1.transformer_blocks.0.norm1.bias"
SD2_V_HEURISTIC_STD = 0.09


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint is: family, inpainting, prediction type and the inferred architectures."""

    family: Family
    inpaint: bool
    prediction: Prediction
    unet: UNetConfig
    vae: VAEConfig | None
    zero_terminal_snr: bool = False
    prediction_source: str = "default"
    arch: dict[str, Any] = field(default_factory=dict, compare=False)


def sub_state_dict(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with the prefix removed (tensors are shared, not copied)."""
    cut = len(prefix)
    return {key[cut:]: value for key, value in state_dict.items() if key.startswith(prefix)}


_TRANSFORMER_BLOCK = re.compile(
    r"^(input_blocks|output_blocks|middle_block)\.(\d+)\.?(\d+)?\.transformer_blocks\.(\d+)\."
)


def _transformer_depths(keys: list[str]) -> dict[tuple[str, int], int]:
    """``(section, block) -> depth`` counted from ``...transformer_blocks.K`` keys."""
    depths: dict[tuple[str, int], int] = {}
    for key in keys:
        match = _TRANSFORMER_BLOCK.match(key)
        if not match:
            continue
        section, block, _sub, index = match.groups()
        slot = (section, int(block))
        depths[slot] = max(depths.get(slot, 0), int(index) + 1)
    return depths


def infer_unet_config(
    unet: dict[str, torch.Tensor], heads: dict[str, int], upcast: bool = False
) -> UNetConfig:
    """Read an LDM UNet's architecture from its (prefix-less) tensors."""
    try:
        conv_in = unet["input_blocks.0.0.weight"]
        conv_out = unet["out.2.weight"]
    except KeyError as exc:
        raise CheckpointError(f"not an LDM UNet: missing {exc.args[0]!r}") from exc
    mc, in_channels = conv_in.shape[0], conv_in.shape[1]
    depths = _transformer_depths(list(unet))

    channel_mult: list[int] = []
    blocks_per_level: list[int] = []
    transformer_depth: list[int] = []
    count = 0
    block = 1
    while f"input_blocks.{block}.0.op.weight" in unet or f"input_blocks.{block}.0.in_layers.0.weight" in unet:
        if f"input_blocks.{block}.0.op.weight" in unet:
            blocks_per_level.append(count)
            count = 0
        else:
            width = unet[f"input_blocks.{block}.0.out_layers.3.weight"].shape[0]
            if count == 0:
                channel_mult.append(width // mc)
            count += 1
            transformer_depth.append(depths.get(("input_blocks", block), 0))
        block += 1
    blocks_per_level.append(count)
    if len(set(blocks_per_level)) != 1 or not channel_mult:
        raise CheckpointError(f"unsupported UNet layout: res blocks per level {blocks_per_level}")
    num_res_blocks = blocks_per_level[0]

    output_count = len(channel_mult) * (num_res_blocks + 1)
    transformer_depth_output = tuple(depths.get(("output_blocks", i), 0) for i in range(output_count))
    if "middle_block.2.in_layers.0.weight" in unet:
        middle_depth = depths.get(("middle_block", 1), 0)
    elif "middle_block.0.in_layers.0.weight" in unet:
        middle_depth = -1  # a lone ResBlock (distilled SDXL variants)
    else:
        middle_depth = -2  # no middle block at all

    context_dim = None
    use_linear = False
    for key, tensor in unet.items():
        if key.endswith("attn2.to_k.weight") and context_dim is None:
            context_dim = tensor.shape[1]
        if key.endswith(".proj_in.weight"):
            use_linear = tensor.ndim == 2
    if context_dim is None:
        raise CheckpointError("UNet has no cross-attention (attn2.to_k) weights; not a text-to-image UNet")
    label = unet.get("label_emb.0.0.weight")
    return UNetConfig(
        model_channels=mc,
        channel_mult=tuple(channel_mult),
        num_res_blocks=num_res_blocks,
        transformer_depth=tuple(transformer_depth),
        transformer_depth_middle=middle_depth,
        transformer_depth_output=transformer_depth_output,
        context_dim=int(context_dim),
        in_channels=int(in_channels),
        out_channels=int(conv_out.shape[0]),
        use_linear_in_transformer=use_linear,
        adm_in_channels=None if label is None else int(label.shape[1]),
        upcast_attention=upcast,
        **heads,
    )


def infer_vae_config(vae: dict[str, torch.Tensor]) -> VAEConfig:
    """Read an AutoencoderKL's widths from its (prefix-less) tensors."""
    try:
        conv_in = vae["encoder.conv_in.weight"]
        ch = conv_in.shape[0]
        levels = 0
        mult = []
        while f"encoder.down.{levels}.block.0.conv1.weight" in vae:
            mult.append(vae[f"encoder.down.{levels}.block.0.conv1.weight"].shape[0] // ch)
            levels += 1
        blocks = 0
        while f"encoder.down.0.block.{blocks}.conv1.weight" in vae:
            blocks += 1
        return VAEConfig(
            ch=int(ch),
            ch_mult=tuple(mult),
            num_res_blocks=blocks,
            z_channels=int(vae["decoder.conv_in.weight"].shape[1]),
            embed_dim=int(vae["post_quant_conv.weight"].shape[1]),
            in_channels=int(conv_in.shape[1]),
            out_ch=int(vae["decoder.conv_out.weight"].shape[0]),
        )
    except KeyError as exc:
        raise CheckpointError(f"not an LDM AutoencoderKL: missing {exc.args[0]!r}") from exc


def detect_family(unet: UNetConfig, state_dict: dict[str, torch.Tensor]) -> Family:
    """Classify by structure: levels, label_emb, proj_in rank; text prefixes must not contradict."""
    levels = len(unet.channel_mult)
    first_level_attends = any(unet.transformer_depth[: unet.num_res_blocks])
    if unet.adm_in_channels is not None:
        if levels == 3 and not first_level_attends:
            family: Family = "sdxl"
        elif levels == 4 and not first_level_attends:
            family = "sdxl-refiner"
        elif levels == 4 and unet.use_linear_in_transformer:
            family = "sd2"  # stable unCLIP: SD2.1 with the CLIP image embedding as y
        else:
            raise CheckpointError(
                "UNet with a class embedding but neither SDXL- nor stable-unCLIP-shaped"
            )
    elif levels == 4 and first_level_attends:
        family = "sd2" if unet.use_linear_in_transformer else "sd1"
    else:
        raise CheckpointError(
            f"unrecognised UNet structure: {levels} levels, depths {unet.transformer_depth}"
        )

    present = [fam for fam in FAMILIES if any(k.startswith(TEXT_PREFIXES[fam]) for k in state_dict)]
    # SDXL's CLIP-L prefix shares nothing with the others; SD1/SD2 prefixes are distinct as well.
    if present and family not in present:
        raise CheckpointError(f"UNet looks like {family} but the text encoder looks like {present[0]}")
    return family


def head_config(family: Family, arch: dict[str, Any]) -> dict[str, int]:
    """Family head defaults, replaced by ``arch["unet"]`` head settings when given."""
    unet_arch = arch.get("unet", {}) if isinstance(arch.get("unet"), dict) else {}
    if "num_heads" in unet_arch:
        return {"num_heads": int(unet_arch["num_heads"])}
    if "num_head_channels" in unet_arch:
        return {"num_head_channels": int(unet_arch["num_head_channels"])}
    return dict(HEAD_DEFAULTS[family])


def detect_prediction(
    family: Family,
    unet_sd: dict[str, torch.Tensor],
    state_dict: dict[str, torch.Tensor],
    arch: dict[str, Any],
    inpaint: bool,
) -> tuple[Prediction, str]:
    """Prediction type and where it came from: metadata, a marker key, the SD2 heuristic, or default."""
    if arch.get("prediction") in ("eps", "v_prediction"):
        return arch["prediction"], "metadata"
    if "v_pred" in state_dict:
        return "v_prediction", "v_pred key"
    if family == "sd2" and "label_emb.0.0.weight" in unet_sd:
        return "v_prediction", "stable unCLIP"
    if "edm_mean" in state_dict or "edm_vpred.sigma_max" in state_dict:
        raise CheckpointError("EDM checkpoints (Playground 2.5, EDM v-pred) are not supported")
    if family == "sd2" and not inpaint and SD2_V_HEURISTIC_KEY in unet_sd:
        spread = unet_sd[SD2_V_HEURISTIC_KEY].float().std().item()
        return ("v_prediction" if spread > SD2_V_HEURISTIC_STD else "eps"), "sd2 norm1.bias heuristic"
    return "eps", "default"


def adm_width_consistent(family: Family, adm: int | None) -> bool:
    """SDXL ``adm`` = pooled width + n·256; the pooled part must stay positive. stable unCLIP's
    ``adm`` is an image embed ⊕ its noise-level embedding of the same width."""
    if family == "sd2" and adm is not None:
        return adm % 2 == 0
    if family not in ADM_SCALARS or adm is None:
        return adm is None
    return adm > ADM_SCALARS[family] * ADM_SCALAR_WIDTH


def detect(
    state_dict: dict[str, torch.Tensor],
    unet_sd: dict[str, torch.Tensor],
    vae_sd: dict[str, torch.Tensor] | None,
    arch: dict[str, Any],
    overrides: dict[str, Any] | None = None,
) -> CheckpointInfo:
    """Build the :class:`CheckpointInfo` of a checkpoint from its tensors, metadata and overrides."""
    overrides = overrides or {}
    probe = infer_unet_config(unet_sd, {"num_heads": 1})
    family = detect_family(probe, state_dict)
    if overrides.get("family") not in (None, family):
        raise CheckpointError(f"override says {overrides['family']} but the file is {family}")
    if not adm_width_consistent(family, probe.adm_in_channels):
        raise CheckpointError(f"label_emb width {probe.adm_in_channels} does not fit {family}")
    unet = infer_unet_config(unet_sd, head_config(family, arch), UPCAST_ATTENTION[family])
    inpaint = unet.in_channels > unet.out_channels
    prediction, source = detect_prediction(family, unet_sd, state_dict, arch, inpaint)
    if overrides.get("prediction") is not None:
        if overrides["prediction"] not in ("eps", "v_prediction"):
            raise CheckpointError(f"prediction must be eps or v_prediction, not {overrides['prediction']!r}")
        prediction, source = overrides["prediction"], "override"
    zsnr = bool(overrides.get("zero_terminal_snr", arch.get("zero_terminal_snr", "ztsnr" in state_dict)))
    return CheckpointInfo(
        family=family,
        inpaint=inpaint,
        prediction=prediction,
        unet=unet,
        vae=infer_vae_config(vae_sd) if vae_sd else None,
        zero_terminal_snr=zsnr,
        prediction_source=source,
        arch=arch,
    )
