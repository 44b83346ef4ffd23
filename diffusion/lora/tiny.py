"""Random LoRA / LyCORIS files in the real key layouts, for the tiny checkpoints (tests, demos, bench).

``random_lora(fmt, target, rank, seed)`` returns a state dict that names modules the way each
trainer does: kohya (diffusers-style UNet names for SD1/SD2, LDM names for SDXL, ``lora_te*_``),
diffusers/PEFT (``unet.``/``text_encoder.`` + ``lora_A``/``lora_B``, no alpha), and the LyCORIS
algorithms under kohya names. Values are small so the patched models stay well-behaved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from diffusion.lora.keys import ldm_to_diffusers_module
from diffusion.models.unet import UNetConfig, UNetModel
from diffusion.text.arch import EncoderArch, family_slots
from diffusion.text.convert import canonical_key_shapes

FORMATS = (
    "kohya", "locon", "dora", "peft", "loha", "loha-tucker", "lokr", "lokr-factorised", "lokr-tucker",
    "ia3", "glora", "oft", "boft", "diff",
)


@dataclass(frozen=True)
class LoRATarget:
    """What a LoRA is written for: the UNet's LDM weight shapes and its text encoders."""

    family: str
    unet_config: UNetConfig
    unet_shapes: dict[str, tuple[int, ...]]  # LDM name (no prefix) → shape
    text_archs: dict[str, EncoderArch]  # encoder slot name → architecture


def lora_target(family: str, unet_config: UNetConfig, text_archs: dict[str, EncoderArch]) -> LoRATarget:
    with torch.device("meta"):
        unet = UNetModel(unet_config)
    shapes = {name: tuple(p.shape) for name, p in unet.named_parameters()}
    slots = {slot.name for slot in family_slots(family)}
    return LoRATarget(family, unet_config, shapes, {k: v for k, v in text_archs.items() if k in slots})


def tiny_lora_target(variant: str) -> LoRATarget:
    """The target of a tiny checkpoint variant (diffusion.checkpoint.tiny)."""
    from diffusion.checkpoint.tiny import VARIANTS, tiny_unet_config
    from diffusion.text.tiny import TINY

    return lora_target(VARIANTS[variant][0], tiny_unet_config(variant), TINY)


_ATTENTION = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
              "attn2.to_v", "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")
_TEXT = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def _unet_modules(target: LoRATarget, convs: bool) -> dict[str, tuple[int, ...]]:
    """LDM module path → weight shape of what kohya trains (transformers; with LoCon also 3×3 convs)."""
    modules = {}
    for name, shape in target.unet_shapes.items():
        if not name.endswith(".weight"):
            continue
        module = name.removesuffix(".weight")
        in_transformer = ".transformer_blocks." in module and module.endswith(_ATTENTION)
        projection = module.endswith((".proj_in", ".proj_out"))
        conv = convs and len(shape) == 4 and shape[2] == 3 and (".in_layers.2" in module or ".out_layers.3" in module)
        if in_transformer or projection or conv:
            modules[module] = shape
    return modules


def _text_modules(target: LoRATarget) -> dict[str, dict[str, tuple[int, ...]]]:
    """Encoder slot → HF module path (``text_model.encoder.layers.i.…``) → weight shape."""
    result = {}
    for slot, arch in target.text_archs.items():
        shapes = canonical_key_shapes(arch)
        result[slot] = {
            "text_model." + name.removesuffix(".weight"): shape
            for name, shape in shapes.items()
            if name.endswith(".weight") and name.removesuffix(".weight").endswith(_TEXT)
        }
    return result


def _kohya_names(target: LoRATarget, convs: bool) -> dict[str, tuple[int, ...]]:
    """kohya module names → weight shapes (UNet: diffusers paths for SD1/SD2, LDM paths for SDXL)."""
    names = {}
    sdxl = target.family.startswith("sdxl")
    for module, shape in _unet_modules(target, convs).items():
        path = module if sdxl else ldm_to_diffusers_module(module, target.unet_config)
        names["lora_unet_" + path.replace(".", "_")] = shape
    texts = _text_modules(target)
    for slot, modules in texts.items():
        prefix = {"clip_l": "lora_te1_", "clip_g": "lora_te2_"}[slot] if len(texts) == 2 else "lora_te_"
        for module, shape in modules.items():
            names[prefix + module.replace(".", "_")] = shape
    return names


def _peft_names(target: LoRATarget) -> dict[str, tuple[int, ...]]:
    names = {}
    for module, shape in _unet_modules(target, convs=False).items():
        names["unet." + ldm_to_diffusers_module(module, target.unet_config)] = shape
    texts = _text_modules(target)
    for slot, modules in texts.items():
        prefix = "text_encoder_2." if slot == "clip_g" and len(texts) == 2 else "text_encoder."
        names.update({prefix + module: shape for module, shape in modules.items()})
    return names


def _factor(dimension: int) -> tuple[int, int]:
    """dimension = a·b with a ≤ b as close as possible (LoKr's split)."""
    a = max(d for d in range(1, math.isqrt(dimension) + 1) if dimension % d == 0)
    return a, dimension // a


def _module_tensors(fmt: str, shape: tuple[int, ...], rank: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """One module's tensors for a format, sized for a weight of `shape`."""
    out, inp, kernel = shape[0], shape[1], tuple(shape[2:])
    flat_in = inp * math.prod(kernel)

    def rand(*dims: int, std: float = 0.1) -> torch.Tensor:
        return std * torch.randn(dims, generator=g)

    alpha = torch.tensor(float(rank) / 2)
    if fmt in ("kohya", "locon", "dora"):
        up = rand(out, rank, *([1] * len(kernel)))
        down = rand(rank, inp, *kernel)
        tensors = {"lora_up.weight": up, "lora_down.weight": down, "alpha": alpha}
        if fmt == "dora":
            tensors["dora_scale"] = 1.0 + rand(out, *([1] * (len(shape) - 1)))
        return tensors
    if fmt == "loha":
        return {"hada_w1_a": rand(out, rank), "hada_w1_b": rand(rank, flat_in), "hada_w2_a": rand(out, rank),
                "hada_w2_b": rand(rank, flat_in), "alpha": alpha}
    if fmt == "loha-tucker":
        if not kernel:
            return _module_tensors("loha", shape, rank, g)
        return {"hada_w1_a": rand(rank, out), "hada_w1_b": rand(rank, inp), "hada_t1": rand(rank, rank, *kernel),
                "hada_w2_a": rand(rank, out), "hada_w2_b": rand(rank, inp), "hada_t2": rand(rank, rank, *kernel),
                "alpha": alpha}
    if fmt.startswith("lokr"):
        (o1, o2), (i1, i2) = _factor(out), _factor(inp)
        tensors = {"lokr_w1": rand(o1, i1, std=1.0)}
        if fmt == "lokr":
            tensors["lokr_w2"] = rand(o2, i2, *kernel)
        elif fmt == "lokr-tucker" and kernel:
            tensors.update(lokr_w2_a=rand(rank, o2), lokr_w2_b=rand(rank, i2), lokr_t2=rand(rank, rank, *kernel))
        else:
            tensors.update(lokr_w2_a=rand(o2, rank), lokr_w2_b=rand(rank, i2, *kernel))
        if fmt != "lokr":
            tensors["alpha"] = alpha
        return tensors
    if fmt == "ia3":
        on_input = len(shape) == 2 and out % 2 == 0  # both axes exercised across modules
        return {"weight": rand(inp if on_input else out), "on_input": torch.tensor(on_input)}
    if fmt == "glora":
        ones = [1] * len(kernel)  # convolutions store the factors as 1×1 conv weights
        return {"a1.weight": rand(inp, rank, *ones), "a2.weight": rand(rank, inp, *ones),
                "b1.weight": rand(out, rank, *ones), "b2.weight": rand(rank, inp, *kernel), "alpha": alpha}
    if fmt == "oft":
        size = _block_size(out, rank)
        return {"oft_blocks": rand(out // size, size, size), "alpha": torch.tensor(0.0)}
    if fmt == "boft":
        size = _block_size(out, 2 * rank)
        stages = int(math.log2(out // size)) + 1 if out // size > 1 else 1
        return {"oft_blocks": rand(stages, out // size, size, size), "rescale": 1.0 + rand(out, *([1] * (len(shape) - 1))),
                "alpha": torch.tensor(0.0)}
    if fmt == "diff":
        return {"diff": rand(*shape, std=0.01)}
    raise ValueError(f"unknown LoRA format {fmt!r}; choose from {', '.join(FORMATS)}")


def _block_size(out: int, wanted: int) -> int:
    """The largest power of two ≤ `wanted` that divides `out` (OFT block size)."""
    size = 1
    while size * 2 <= wanted and out % (size * 2) == 0:
        size *= 2
    return size


def random_lora(fmt: str, target: LoRATarget, rank: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random LoRA state dict of format `fmt` for `target` (same seed → same tensors)."""
    g = torch.Generator().manual_seed(seed)
    if fmt == "peft":
        state = {}
        for name, shape in _peft_names(target).items():
            ones = (1,) * (len(shape) - 2)  # PEFT keeps a conv's kernel axes (1×1 up)
            state[f"{name}.lora_A.weight"] = 0.1 * torch.randn((rank, *shape[1:]), generator=g)
            state[f"{name}.lora_B.weight"] = 0.1 * torch.randn((shape[0], rank, *ones), generator=g)
        return state
    state = {}
    for name, shape in _kohya_names(target, convs=fmt != "kohya").items():
        for part, tensor in _module_tensors(fmt, shape, rank, g).items():
            state[f"{name}.{part}"] = tensor.contiguous()
    return state


def write_random_lora(path: str | Path, fmt: str, variant: str, rank: int = 4, seed: int = 0) -> Path:
    """Write a random LoRA of `fmt` for a tiny checkpoint `variant` (.safetensors or .pt)."""
    path = Path(path)
    state = random_lora(fmt, tiny_lora_target(variant), rank, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
