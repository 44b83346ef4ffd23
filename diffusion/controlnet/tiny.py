"""Tiny random ControlNets in the key layouts found in the wild, for tests and demos.

Each fits the tiny checkpoint of its family (diffusion.checkpoint.tiny): same encoder widths,
context and ``y`` widths, head layout in the ``latentgraph.arch`` metadata. Layouts: ``ldm``
(``control_model.*``, lllyasviel's .pth/.safetensors), ``bare`` (community files without the
prefix), ``diffusers`` (``ControlNetModel``, written through diffusers' own converter, so it needs
the dev dependency diffusers) and ``diff`` (a "difference" file: ControlNet minus the tiny base
UNet of ``base_seed``), ``control-lora`` (Stability's layout: full hint encoder, zero convs, norms and
biases; ``.up``/``.down`` rank-4 factors for the other copied UNet weights, against the tiny base
UNet of ``base_seed``). Variant ``sdxl-small`` has the shallower transformers of the SDXL
"small/mid" ControlNets.

T2I-Adapter layouts: ``t2i`` (TencentARC's full adapter, sd14v1 style: 1×1 kernels, pooling),
``t2i-light``, ``t2i-depth`` (a one-channel hint) and ``t2i-diffusers`` (diffusers' ``T2IAdapter``,
random weights drawn by diffusers itself); SDXL adapters unshuffle by 16.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from diffusion.checkpoint.arch import UNET_PREFIX, _depth_output
from diffusion.checkpoint.tiny import _randomise_norms, tiny_checkpoint_state_dict, tiny_unet_config
from diffusion.controlnet.formats import CONTROL_PREFIX, DIFFERENCE_KEY
from diffusion.controlnet.network import ControlNetConfig, ControlNetModel
from diffusion.controlnet.t2i import AdapterConfig, T2IAdapterModel
from diffusion.models.unet import UNetConfig

VARIANTS = ("sd1", "sd2", "sdxl", "sdxl-small")
CONTROLNET_LAYOUTS = ("ldm", "bare", "diffusers", "diff", "control-lora")
CONTROL_LORA_RANK = 4
T2I_LAYOUTS = ("t2i", "t2i-light", "t2i-depth", "t2i-diffusers")
LAYOUTS = CONTROLNET_LAYOUTS + T2I_LAYOUTS
TINY_HINT_WIDTHS = (8, 16, 16, 32)


def base_variant(variant: str) -> str:
    """The tiny checkpoint variant a tiny ControlNet variant belongs to."""
    return "sdxl" if variant == "sdxl-small" else variant


def tiny_controlnet_config(variant: str) -> ControlNetConfig:
    if variant not in VARIANTS:
        raise ValueError(f"unknown tiny ControlNet variant {variant!r}; choose from {', '.join(VARIANTS)}")
    unet: UNetConfig = tiny_unet_config(base_variant(variant))
    if variant == "sdxl-small":
        depth = (0, 0, 0, 0, 1, 1)
        unet = dataclasses.replace(unet, transformer_depth=depth, transformer_depth_middle=1,
                                   transformer_depth_output=_depth_output(depth, 2))
    return ControlNetConfig(unet=unet, hint_widths=TINY_HINT_WIDTHS)


def tiny_controlnet_ldm(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Prefix-less LDM tensors of a random tiny ControlNet (zero convs random too, so they count)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = ControlNetModel(tiny_controlnet_config(variant))
        _randomise_norms(network, torch.Generator().manual_seed(seed + 1))
    return {k: v.detach().contiguous() for k, v in network.state_dict().items()}


def arch_metadata(variant: str) -> dict[str, str]:
    unet = tiny_controlnet_config(variant).unet
    heads = {"num_heads": unet.num_heads} if unet.num_heads > 0 else {"num_head_channels": unet.num_head_channels}
    arch = {"family": base_variant(variant), "variant": variant, "tiny": True, "unet": heads}
    return {"latentgraph.arch": json.dumps(arch, sort_keys=True)}


def tiny_controlnet_state_dict(variant: str, layout: str, seed: int = 0, base_seed: int = 0) -> dict[str, torch.Tensor]:
    """The tiny ControlNet of ``seed`` in ``layout`` (see the module docstring)."""
    if layout in T2I_LAYOUTS:
        return tiny_t2i_state_dict(variant, layout, seed)
    tensors = tiny_controlnet_ldm(variant, seed)
    if layout == "ldm":
        return {CONTROL_PREFIX + k: v for k, v in tensors.items()}
    if layout == "bare":
        return tensors
    if layout == "diffusers":
        return to_diffusers_layout(tensors, tiny_controlnet_config(variant))
    if layout == "diff":
        base, _ = tiny_checkpoint_state_dict(base_variant(variant), base_seed, include_text=False)
        out = {}
        for key, tensor in tensors.items():
            weight = base.get(UNET_PREFIX + key)
            out[CONTROL_PREFIX + key] = tensor - weight if weight is not None and weight.shape == tensor.shape else tensor
        out[DIFFERENCE_KEY] = torch.zeros(0)
        return out
    if layout == "control-lora":
        return tiny_control_lora(tensors, base_variant(variant), seed, base_seed)
    raise ValueError(f"unknown ControlNet layout {layout!r}; choose from {', '.join(LAYOUTS)}")


def diffusers_controlnet_config(config: ControlNetConfig) -> dict:
    """diffusers ``ControlNetModel`` keyword arguments for the same architecture."""
    unet = config.unet
    levels, nrb = len(unet.channel_mult), unet.num_res_blocks
    level_depth = [unet.transformer_depth[level * nrb] for level in range(levels)]
    widths = [unet.model_channels * m for m in unet.channel_mult]
    heads = [w // unet.num_head_channels for w in widths] if unet.num_head_channels > 0 else unet.num_heads
    kwargs = {
        "in_channels": unet.in_channels,
        "conditioning_channels": config.hint_channels,
        "down_block_types": ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in level_depth],
        "block_out_channels": widths,
        "layers_per_block": nrb,
        "cross_attention_dim": unet.context_dim,
        "attention_head_dim": heads,
        "use_linear_projection": unet.use_linear_in_transformer,
        "transformer_layers_per_block": [d or unet.transformer_depth_middle for d in level_depth],
        "upcast_attention": unet.upcast_attention,
        "conditioning_embedding_out_channels": list(config.hint_widths),
    }
    if unet.adm_in_channels is not None:
        kwargs.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                      projection_class_embeddings_input_dim=unet.adm_in_channels)
    return kwargs


def to_diffusers_layout(tensors: dict[str, torch.Tensor], config: ControlNetConfig) -> dict[str, torch.Tensor]:
    """LDM ControlNet tensors renamed by diffusers' ``convert_controlnet_checkpoint`` (which leaves
    SDXL's ``label_emb`` out; its four tensors are renamed here as diffusers' own table says)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING, convert_controlnet_checkpoint

    out = convert_controlnet_checkpoint(dict(tensors), {"layers_per_block": config.unet.num_res_blocks})
    for diffusers_key, ldm_key in DIFFUSERS_TO_LDM_MAPPING["controlnet"]["addition_embed_type"].items():
        if ldm_key in tensors:
            out[diffusers_key] = tensors[ldm_key]
    return {k: v.contiguous() for k, v in out.items()}


def write_tiny_controlnet(path: str | Path, variant: str, layout: str = "ldm", seed: int = 0,
                          base_seed: int = 0) -> Path:
    """Write a tiny ControlNet ``.safetensors`` file and return its path."""
    path = Path(path)
    state = tiny_controlnet_state_dict(variant, layout, seed, base_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=arch_metadata(variant))
    return path


def tiny_t2i_config(variant: str, layout: str) -> AdapterConfig:
    """The tiny adapter whose features fit the tiny UNet of ``variant`` (sd1 or sdxl)."""
    if variant not in ("sd1", "sdxl") or (variant == "sdxl" and layout in ("t2i-light", "t2i-depth")):
        raise ValueError(f"no tiny {layout} T2I-Adapter for {variant!r}")
    width = tiny_unet_config(variant).model_channels
    channels = (width, 2 * width, 4 * width, 4 * width)
    if layout == "t2i-light":
        return AdapterConfig(light=True, channels=channels, hint_channels=3, blocks_per_level=4)
    return AdapterConfig(light=False, channels=channels, hint_channels=1 if layout == "t2i-depth" else 3,
                         unshuffle=16 if variant == "sdxl" else 8)


def tiny_t2i_state_dict(variant: str, layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    config = tiny_t2i_config(variant, layout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if layout == "t2i-diffusers":
            from diffusers import T2IAdapter

            adapter_type = "full_adapter_xl" if config.xl else "full_adapter"
            network: torch.nn.Module = T2IAdapter(config.hint_channels, list(config.channels), config.blocks_per_level,
                                                  config.unshuffle, adapter_type)
        else:
            network = T2IAdapterModel(config)
    return {k: v.detach().contiguous() for k, v in network.state_dict().items()}


def tiny_control_lora(tensors: dict[str, torch.Tensor], variant: str, seed: int, base_seed: int) -> dict[str, torch.Tensor]:
    """Control-LoRA tensors: the base UNet's matrices get random low-rank factors, the rest is full."""
    base, _ = tiny_checkpoint_state_dict(variant, base_seed, include_text=False)
    generator = torch.Generator().manual_seed(seed + 2)
    out: dict[str, torch.Tensor] = {"lora_controlnet": torch.zeros(0)}
    for key, tensor in tensors.items():
        weight = base.get(UNET_PREFIX + key)
        if weight is None or weight.shape != tensor.shape or tensor.ndim < 2:
            out[key] = tensor
            continue
        stem = key[: -len(".weight")]
        tail = (1,) * (tensor.ndim - 2)
        out[stem + ".up"] = 0.05 * torch.randn((tensor.shape[0], CONTROL_LORA_RANK, *tail), generator=generator)
        out[stem + ".down"] = 0.05 * torch.randn((CONTROL_LORA_RANK, *tensor.shape[1:]), generator=generator)
    return out
