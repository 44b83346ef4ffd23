"""Key maps: the module names LoRA files use → the weight keys of our MODEL and CLIP patches.

A key map is ``{lora module name: model weight key}``; ``load_lora`` looks up each module name
with every tensor suffix a format uses (``.lora_up.weight``, ``.lora_B.weight``, ``.hada_w1_a``…).
Model keys follow the patch contract: ``diffusion_model.<LDM name>`` for the UNet and
``clip_l.transformer.<HF CLIPTextModel key>`` (``clip_h``, ``clip_g``) for text encoders.

Names accepted (shared/reference/model-formats.md §3.1–3.2):

* kohya SD1/SD2: ``lora_unet_`` + diffusers module path with ``_`` (sd-scripts trains a
  diffusers-named UNet); kohya SDXL: ``lora_unet_`` + LDM path with ``_``;
* diffusers / PEFT: ``unet.<diffusers path>`` and the bare diffusers path (``load_lora_adapter``
  on a UNet), old attention-processor names (``attn1.processor.to_q`` …);
* LyCORIS from SimpleTuner: ``lycoris_`` + diffusers path with ``_``;
* generic (ComfyUI's own LoraSave / model-difference files): ``diffusion_model.<LDM path>``;
* text: ``lora_te_`` (single-encoder families and the SDXL refiner), ``lora_te1_``/``lora_te2_``
  (SDXL CLIP-L / bigG), ``text_encoder.``/``text_encoder_2.`` (diffusers), ``text_encoders.<key>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from diffusion.models.unet import UNetConfig

UNET_PREFIX = "diffusion_model."
CLIP_SUFFIX = ".transformer."

# LDM ResBlock part → diffusers ResnetBlock2D part.
_RESNET_PARTS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_SIMPLE = {
    "input_blocks.0.0": "conv_in",
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "label_emb.0.0": "add_embedding.linear_1",
    "label_emb.0.2": "add_embedding.linear_2",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


def ldm_to_diffusers_module(module: str, config: UNetConfig) -> str | None:
    """The diffusers ``UNet2DConditionModel`` path of an LDM UNet module path (None if it has none).

    The inverse of diffusion.checkpoint.diffusers_unet's renaming (tests check the round trip).
    """
    if module in _SIMPLE:
        return _SIMPLE[module]
    per_level = config.num_res_blocks + 1
    if m := re.fullmatch(r"input_blocks\.(\d+)\.(\d)\.(.+)", module):
        index, part, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        level, block = divmod(index - 1, per_level)
        if block == config.num_res_blocks:
            return f"down_blocks.{level}.downsamplers.0.conv" if rest == "op" else None
        if part == 0:
            return _resnet(f"down_blocks.{level}.resnets.{block}", rest)
        return f"down_blocks.{level}.attentions.{block}.{rest}"
    if m := re.fullmatch(r"middle_block\.(\d)\.(.+)", module):
        part, rest = int(m.group(1)), m.group(2)
        if part == 1:
            return f"mid_block.attentions.0.{rest}"
        return _resnet(f"mid_block.resnets.{part // 2}", rest)
    if m := re.fullmatch(r"output_blocks\.(\d+)\.(\d)\.(.+)", module):
        index, part, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        level, block = divmod(index, per_level)
        if part == 0:
            return _resnet(f"up_blocks.{level}.resnets.{block}", rest)
        if rest == "conv":
            return f"up_blocks.{level}.upsamplers.0.conv"
        return f"up_blocks.{level}.attentions.{block}.{rest}"
    return None


def _resnet(prefix: str, rest: str) -> str | None:
    part = _RESNET_PARTS.get(rest)
    return None if part is None else f"{prefix}.{part}"


def _modules(keys: Iterable[str], prefix: str) -> dict[str, str]:
    """``{module path: weight key}`` for the ``.weight`` keys under `prefix` (module path without it)."""
    return {
        key[len(prefix) : -len(".weight")]: key
        for key in keys
        if key.startswith(prefix) and key.endswith(".weight")
    }


def unet_key_map(model_keys: Iterable[str], config: UNetConfig) -> dict[str, str]:
    """Every accepted LoRA module name of a UNet → its ``diffusion_model.…weight`` key."""
    key_map: dict[str, str] = {}
    for module, key in _modules(model_keys, UNET_PREFIX).items():
        key_map[f"lora_unet_{module.replace('.', '_')}"] = key
        key_map[f"{UNET_PREFIX}{module}"] = key
        diffusers = ldm_to_diffusers_module(module, config)
        if diffusers is None:
            continue
        flat = diffusers.replace(".", "_")
        key_map[f"lora_unet_{flat}"] = key
        key_map[f"lycoris_{flat}"] = key
        key_map[f"unet.{diffusers}"] = key
        key_map[diffusers] = key
        processor = _processor_name(diffusers)
        if processor is not None:
            key_map[f"unet.{processor}"] = key
            key_map[processor] = key
    return key_map


def _processor_name(diffusers: str) -> str | None:
    """Old diffusers attention-processor LoRA names (``attn1.processor.to_q``, ``…processor.to_out``)."""
    if m := re.fullmatch(r"(.+\.attn\d)\.(to_q|to_k|to_v|to_out\.0)", diffusers):
        return f"{m.group(1)}.processor.{m.group(2).removesuffix('.0')}"
    return None


# Text-encoder slot → the prefixes kohya and diffusers give it, per set of encoders present.
def _text_prefixes(encoders: set[str]) -> dict[str, tuple[str, ...]]:
    if encoders == {"clip_l", "clip_g"}:  # SDXL base
        return {"clip_l": ("lora_te1_", "text_encoder."), "clip_g": ("lora_te2_", "text_encoder_2.")}
    # One encoder (SD1 clip_l, SD2 clip_h, SDXL refiner clip_g): kohya's lora_te_, diffusers' text_encoder.
    return {name: ("lora_te_", "text_encoder.") for name in encoders}


def clip_key_map(model_keys: Iterable[str]) -> dict[str, str]:
    """Every accepted LoRA module name of a CLIP's encoders → its ``clip_x.transformer.…weight`` key."""
    keys = list(model_keys)
    encoders = {key.split(".", 1)[0] for key in keys if CLIP_SUFFIX in key}
    key_map: dict[str, str] = {}
    for encoder, prefixes in _text_prefixes(encoders).items():
        for module, key in _modules(keys, encoder + CLIP_SUFFIX).items():
            key_map[f"text_encoders.{key[: -len('.weight')]}"] = key
            for prefix in prefixes:
                if prefix.endswith("_"):  # kohya
                    key_map[prefix + module.replace(".", "_")] = key
                    if module == "text_projection":
                        key_map[prefix + "text_projection"] = key
                else:  # diffusers: the module path as is
                    key_map[prefix + module] = key
    return key_map
