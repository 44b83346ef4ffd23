"""T2I-Adapters (TencentARC): a small convolutional pyramid over the hint whose features are added
to the UNet encoder's outputs (ComfyUI's ``control["input"]`` after blocks 2, 5, 8, 11 for SD1;
3, 5, 8 and the middle for SDXL).

Unlike a ControlNet the adapter does not see the latent or the timestep, so its features are
computed once per hint size and batch and reused at every step. Layouts: the original
(``conv_in``, ``body.N.{in_conv,block1,block2,skep,down_opt}``; ``Adapter_light``:
``body.N.{in_conv,body.M,out_conv}``) and diffusers' ``T2IAdapter`` (``adapter.body.i.resnets.j``),
renamed to the original on load; SDXL adapters unshuffle by 16 (``conv_in`` takes 256 or 768).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffusion.checkpoint.loader import adopt_state_dict
from diffusion.controlnet.control import ControlBase, Residuals
from diffusion.controlnet.formats import ControlNetError
from diffusion.memory import ModelManager


@dataclass(frozen=True)
class AdapterConfig:
    """``light`` or full; widths per level; hint channels after ``unshuffle``; block details."""

    light: bool
    channels: tuple[int, ...]
    hint_channels: int
    unshuffle: int = 8
    blocks_per_level: int = 2
    kernel: int = 1  # block2 / in_conv / skep kernel of the full adapter
    conv_downsample: bool = False  # stride-2 conv ("down_opt.op") instead of 2×2 average pooling
    skip_conv: bool = False  # full adapter blocks with a "skep" conv (and always an in_conv)

    @property
    def xl(self) -> bool:
        return self.unshuffle == 16


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """2×2 average pooling; odd sizes round up (the original pads by the odd remainder)."""
    return F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)


class _Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _ResBlock(nn.Module):
    """Full adapter block: [downsample] → [in_conv] → x + block2(relu(block1(x))) (+ skep)."""

    def __init__(self, c_in: int, c_out: int, down: bool, config: AdapterConfig) -> None:
        super().__init__()
        pad = config.kernel // 2
        self.down = down
        if down and config.conv_downsample:
            self.down_opt = _Downsample(c_in)
        self.in_conv = nn.Conv2d(c_in, c_out, config.kernel, 1, pad) if c_in != c_out or config.skip_conv else None
        self.block1 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.block2 = nn.Conv2d(c_out, c_out, config.kernel, 1, pad)
        self.skep = nn.Conv2d(c_in, c_out, config.kernel, 1, pad) if config.skip_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = self.down_opt(x) if hasattr(self, "down_opt") else _downsample(x)
        if self.in_conv is not None:
            x = self.in_conv(x)
        h = self.block2(F.relu(self.block1(x)))
        return h + (self.skep(x) if self.skep is not None else x)


class _LightResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.block2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block2(F.relu(self.block1(x)))


class _LightLevel(nn.Module):
    """Light adapter level: [avg-pool] → 1×1 in_conv (to width/4) → res blocks → 1×1 out_conv."""

    def __init__(self, c_in: int, c_out: int, blocks: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.in_conv = nn.Conv2d(c_in, c_out // 4, 1)
        self.body = nn.Sequential(*[_LightResBlock(c_out // 4) for _ in range(blocks)])
        self.out_conv = nn.Conv2d(c_out // 4, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = _downsample(x)
        return self.out_conv(self.body(self.in_conv(x)))


class T2IAdapterModel(nn.Module):
    """``forward(hint)`` → ComfyUI-layout residuals: features at the end of each level."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        cin = config.hint_channels * config.unshuffle**2
        ch = config.channels
        if config.light:
            self.body = nn.ModuleList(
                _LightLevel(cin if i == 0 else ch[i - 1], ch[i], config.blocks_per_level, down=i > 0)
                for i in range(len(ch))
            )
            return
        # SD1: levels 1–3 halve the size; SDXL: only level 2 does (level 1 just widens).
        down_levels = {2} if config.xl else {1, 2, 3}
        body = []
        for i in range(len(ch)):
            for j in range(config.blocks_per_level):
                first = j == 0 and i > 0
                body.append(_ResBlock(ch[i - 1] if first else ch[i], ch[i], first and i in down_levels, config))
        self.body = nn.ModuleList(body)
        self.conv_in = nn.Conv2d(cin, ch[0], 3, 1, 1)

    def features(self, hint: torch.Tensor) -> list[torch.Tensor]:
        """One feature map per level, shallow to deep."""
        x = F.pixel_unshuffle(hint, self.config.unshuffle)
        out = []
        if self.config.light:
            for level in self.body:
                x = level(x)
                out.append(x)
            return out
        x = self.conv_in(x)
        per_level = self.config.blocks_per_level
        for i in range(len(self.config.channels)):
            for block in self.body[i * per_level : (i + 1) * per_level]:
                x = block(x)
            out.append(x)
        return out

    def forward(self, hint: torch.Tensor) -> Residuals:
        features = self.features(hint)
        if self.config.xl:
            # SDXL's 9 input blocks: after blocks 3, 5 and 8, then the middle block.
            slots: list[torch.Tensor | None] = [None, None, None, features[0], None, features[1], None, None,
                                                features[2]]
            return {"input": slots[::-1], "middle": [features[3]]}
        slots = []
        for feature in features:
            slots += [None, None, feature]  # after input blocks 2, 5, 8, 11
        return {"input": slots[::-1]}


class T2IAdapter(ControlBase):
    """A T2I-Adapter as a CONTROL_NET value (ComfyUI's ``T2IAdapter``)."""

    def __init__(self, network: T2IAdapterModel, manager: ModelManager, family: str) -> None:
        super().__init__(network, manager, family)
        self._features: tuple[tuple, Residuals] | None = None

    def copy_to(self, other: ControlBase) -> None:
        super().copy_to(other)
        if isinstance(other, T2IAdapter):
            other._features = None

    def set_cond_hint(self, *args, **kwargs) -> ControlBase:
        self._features = None
        return super().set_cond_hint(*args, **kwargs)

    def residuals(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                  y: torch.Tensor | None, batched_number: int) -> Residuals:
        network: T2IAdapterModel = self.network  # type: ignore[assignment]
        step = network.config.unshuffle
        width = math.ceil(x.shape[3] * self.compression_ratio / step) * step
        height = math.ceil(x.shape[2] * self.compression_ratio / step) * step
        key = (width, height, x.shape[0], batched_number)
        if self._features is None or self._features[0] != key:
            hint = self.hint_for(x, batched_number, width, height)
            if network.config.hint_channels == 1 and hint.shape[1] > 1:
                hint = hint.mean(dim=1, keepdim=True)
            placed, (hint_in,) = self._run(hint)
            with torch.no_grad():
                self._features = (key, placed(hint_in))
        return {k: list(v) for k, v in self._features[1].items()}

    def cleanup(self) -> None:
        self._features = None
        super().cleanup()


def _from_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers ``T2IAdapter`` names → original names (full: ``body.{2i+j}``; light: ``body.i.body.j``)."""
    light = "adapter.body.0.out_conv.weight" in state_dict
    blocks = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"adapter\.body\.\d+\.resnets\.(\d+)\.", k)))
    out = {}
    for key, tensor in state_dict.items():
        if m := re.match(r"adapter\.body\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
            i, j, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            out[f"body.{i}.body.{j}.{rest}" if light else f"body.{i * blocks + j}.{rest}"] = tensor
        elif m := re.match(r"adapter\.body\.(\d+)\.in_conv\.(.+)$", key):
            i, rest = int(m.group(1)), m.group(2)
            out[f"body.{i}.in_conv.{rest}" if light else f"body.{i * blocks}.in_conv.{rest}"] = tensor
        elif key.startswith("adapter."):
            out[key[len("adapter."):]] = tensor
        else:
            out[key] = tensor
    return out


def infer_adapter_config(tensors: dict[str, torch.Tensor]) -> AdapterConfig:
    """Adapter architecture from its (original-layout) tensor shapes."""
    if "body.0.in_conv.weight" in tensors and "conv_in.weight" not in tensors:
        levels = 1 + max(int(m.group(1)) for k in tensors if (m := re.match(r"body\.(\d+)\.out_conv\.weight", k)))
        blocks = 1 + max(int(m.group(1)) for k in tensors if (m := re.match(r"body\.0\.body\.(\d+)\.", k)))
        cin = tensors["body.0.in_conv.weight"].shape[1]
        channels = tuple(int(tensors[f"body.{i}.out_conv.weight"].shape[0]) for i in range(levels))
        return AdapterConfig(light=True, channels=channels, hint_channels=cin // 64, blocks_per_level=blocks)
    if "conv_in.weight" not in tensors:
        raise ControlNetError("unknown T2I-Adapter layout (no conv_in or body.0.in_conv)")
    conv_in = tensors["conv_in.weight"]
    cin, width = int(conv_in.shape[1]), int(conv_in.shape[0])
    unshuffle = 16 if cin in (256, 768) else 8
    block_count = 1 + max(int(m.group(1)) for k in tensors if (m := re.match(r"body\.(\d+)\.block1\.weight", k)))
    levels = 4
    per_level = block_count // levels
    channels = tuple(int(tensors[f"body.{i * per_level}.block1.weight"].shape[0]) for i in range(levels))
    if channels[0] != width:
        raise ControlNetError("T2I-Adapter conv_in width does not match its first level")
    return AdapterConfig(
        light=False, channels=channels, hint_channels=cin // unshuffle**2, unshuffle=unshuffle,
        blocks_per_level=per_level, kernel=int(tensors["body.0.block2.weight"].shape[2]),
        conv_downsample=any(k.endswith("down_opt.op.weight") for k in tensors),
        skip_conv="body.0.skep.weight" in tensors,
    )


def load_t2i_adapter(state_dict: dict[str, torch.Tensor], manager: ModelManager) -> T2IAdapter:
    """A T2I-Adapter from its state dict (original or diffusers layout)."""
    if "adapter.body.0.resnets.0.block1.weight" in state_dict:
        state_dict = _from_diffusers(state_dict)
    config = infer_adapter_config(state_dict)
    with torch.device("meta"):
        network = T2IAdapterModel(config)
    dtype = manager.unet_dtype()
    adopt_state_dict(network, {k: v.to(manager.storage_device, dtype) for k, v in state_dict.items()}, "T2I-Adapter")
    family = "sdxl" if config.xl else "sd1"
    manager.register(network, f"T2I-Adapter ({family})")
    adapter = T2IAdapter(network, manager, family)
    if family == "sd1":
        adapter.compatible_families = ("sd1", "sd2")  # same encoder widths; SD2 adapters use these files too
    return adapter
