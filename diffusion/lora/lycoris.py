"""LyCORIS algorithms beyond LoRA: LoHa, LoKr, GLoRA, (IA)³, OFT and BOFT.

Formulas from the LyCORIS papers and format notes (shared/reference/model-formats.md §3.3);
strength semantics follow the ``lycoris_lora`` package's merge (tests compare against it).
"""

from __future__ import annotations

import torch

from diffusion.lora.base import DeltaAdapter, Function, StateDict, alpha_scale


def _tucker(core: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CP/Tucker rebuild: core [r, r, k…] with a [r, out] and b [r, in] → [out, in, k…]."""
    return torch.einsum("ij...,ip,jr->pr...", core, a, b)


class LoHaAdapter(DeltaAdapter):
    """ΔW = (alpha/rank)·(w1a·w1b) ⊙ (w2a·w2b); Tucker form with cores ``hada_t1``/``hada_t2``."""

    name = "loha"
    PARTS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")

    def __init__(self, loaded_keys, w1a, w1b, w2a, w2b, t1, t2, alpha, dora_scale=None) -> None:
        super().__init__(loaded_keys, dora_scale)
        self.w1a, self.w1b, self.w2a, self.w2b, self.t1, self.t2 = w1a, w1b, w2a, w2b, t1, t2
        self.scale = alpha_scale(alpha, w1b.shape[0])

    @classmethod
    def load(cls, name: str, sd: StateDict, alpha, dora_scale) -> LoHaAdapter | None:
        keys = [f"{name}.{part}" for part in cls.PARTS]
        if not all(key in sd for key in keys):
            return None
        t1_key, t2_key = f"{name}.hada_t1", f"{name}.hada_t2"
        cores = (sd[t1_key], sd[t2_key]) if t1_key in sd and t2_key in sd else (None, None)
        if cores[0] is not None:
            keys += [t1_key, t2_key]
        return cls(tuple(keys), *(sd[key] for key in keys[:4]), *cores, alpha, dora_scale)

    def fits(self, shape: torch.Size) -> bool:
        out = self.w1a.shape[1] if self.t1 is not None else self.w1a.shape[0]
        return shape[0] == out

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        w1a, w1b, w2a, w2b = (t.to(weight) for t in (self.w1a, self.w1b, self.w2a, self.w2b))
        if self.t1 is not None:
            first = _tucker(self.t1.to(weight), w1a, w1b.flatten(1))
            second = _tucker(self.t2.to(weight), w2a, w2b.flatten(1))
        else:
            first, second = w1a @ w1b.flatten(1), w2a @ w2b.flatten(1)
        return self.scale * (first * second).reshape(weight.shape)


class LoKrAdapter(DeltaAdapter):
    """ΔW = scale·kron(w1, w2); either side full or factorised (w2 also Tucker with ``lokr_t2``).

    scale = alpha / rank of the factorised side, and 1 when both sides are full matrices.
    """

    name = "lokr"

    def __init__(self, loaded_keys, w1, w1a, w1b, w2, w2a, w2b, t2, alpha, dora_scale=None) -> None:
        super().__init__(loaded_keys, dora_scale)
        self.w1, self.w1a, self.w1b, self.w2, self.w2a, self.w2b, self.t2 = w1, w1a, w1b, w2, w2a, w2b, t2
        if w1 is not None and w2 is not None:
            self.scale = 1.0
        else:
            rank = w1b.shape[0] if w1b is not None else w2b.shape[0]
            self.scale = alpha_scale(alpha, rank)

    @classmethod
    def load(cls, name: str, sd: StateDict, alpha, dora_scale) -> LoKrAdapter | None:
        parts = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
        found = {part: sd.get(f"{name}.{part}") for part in parts}
        has_w1 = found["lokr_w1"] is not None or (found["lokr_w1_a"] is not None and found["lokr_w1_b"] is not None)
        has_w2 = found["lokr_w2"] is not None or (found["lokr_w2_a"] is not None and found["lokr_w2_b"] is not None)
        if not (has_w1 and has_w2):
            return None
        keys = tuple(f"{name}.{part}" for part, value in found.items() if value is not None)
        if found["lokr_w1"] is not None:
            found["lokr_w1_a"] = found["lokr_w1_b"] = None
        if found["lokr_w2"] is not None:
            found["lokr_w2_a"] = found["lokr_w2_b"] = found["lokr_t2"] = None
        return cls(keys, *found.values(), alpha, dora_scale)

    def _w1(self, weight: torch.Tensor) -> torch.Tensor:
        if self.w1 is not None:
            return self.w1.to(weight)
        return self.w1a.to(weight) @ self.w1b.to(weight)

    def _w2(self, weight: torch.Tensor) -> torch.Tensor:
        if self.w2 is not None:
            return self.w2.to(weight)
        a, b = self.w2a.to(weight), self.w2b.to(weight)
        if self.t2 is not None:
            return _tucker(self.t2.to(weight), a, b.flatten(1))
        return (a @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:])

    def fits(self, shape: torch.Size) -> bool:
        out1 = self.w1.shape[0] if self.w1 is not None else self.w1a.shape[0]
        out2 = self.w2.shape[0] if self.w2 is not None else (self.w2a.shape[1] if self.t2 is not None else self.w2a.shape[0])
        return shape[0] == out1 * out2

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        w1, w2 = self._w1(weight), self._w2(weight)
        while w1.dim() < w2.dim():  # a conv's w2 keeps its kernel axes; w1 broadcasts over them
            w1 = w1.unsqueeze(-1)
        return self.scale * torch.kron(w1, w2.contiguous()).reshape(weight.shape)


class GLoRAAdapter(DeltaAdapter):
    """ΔW = (alpha/rank)·(W·a1·a2 + b1·b2) (the current LyCORIS layout: a1 [in, r], a2 [r, in])."""

    name = "glora"

    def __init__(self, loaded_keys, a1, a2, b1, b2, alpha, dora_scale=None) -> None:
        super().__init__(loaded_keys, dora_scale)
        self.a1, self.a2, self.b1, self.b2 = a1, a2, b1, b2
        self.scale = alpha_scale(alpha, a2.shape[0])

    @classmethod
    def load(cls, name: str, sd: StateDict, alpha, dora_scale) -> GLoRAAdapter | None:
        keys = tuple(f"{name}.{part}.weight" for part in ("a1", "a2", "b1", "b2"))
        if not all(key in sd for key in keys):
            return None
        return cls(keys, *(sd[key] for key in keys), alpha, dora_scale)

    def fits(self, shape: torch.Size) -> bool:
        return shape[0] == self.b1.shape[0] and shape[1] == self.a1.shape[0]

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        a1, a2 = self.a1.to(weight).flatten(1), self.a2.to(weight).flatten(1)
        b = self.b1.to(weight).flatten(1) @ self.b2.to(weight).flatten(1)
        wa = torch.einsum("oi...,ij->oj...", torch.einsum("oi...,ij->oj...", weight, a1), a2)
        return self.scale * (wa + b.reshape(weight.shape))


class IA3Adapter(DeltaAdapter):
    """(IA)³: W scaled per output row by (1 + strength·w), or per input column when ``on_input``."""

    name = "ia3"

    def __init__(self, loaded_keys, scale: torch.Tensor, on_input: bool) -> None:
        super().__init__(loaded_keys)
        self.scale = scale
        self.on_input = on_input

    @classmethod
    def load(cls, name: str, sd: StateDict, alpha, dora_scale) -> IA3Adapter | None:
        weight_key, flag_key = f"{name}.weight", f"{name}.on_input"
        if weight_key not in sd or flag_key not in sd:
            return None
        return cls((weight_key, flag_key), sd[weight_key], bool(sd[flag_key].flatten()[0]))

    def fits(self, shape: torch.Size) -> bool:
        return self.scale.numel() == shape[1 if self.on_input else 0]

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        axis = 1 if self.on_input else 0
        view = [1] * weight.dim()
        view[axis] = -1
        return weight * self.scale.to(weight).reshape(view)


def _cayley(blocks: torch.Tensor, constraint: float) -> torch.Tensor:
    """Orthogonal R = (I + Q)(I − Q)⁻¹ from skew Q = B − Bᵀ, Q's norm clamped to `constraint` (if > 0)."""
    skew = blocks - blocks.transpose(-1, -2)
    if constraint > 0:
        norm = torch.linalg.norm(skew) + 1e-8
        if norm > constraint:
            skew = skew * (constraint / norm)
    eye = torch.eye(blocks.shape[-1], dtype=blocks.dtype, device=blocks.device)
    return (eye + skew) @ torch.linalg.inv(eye - skew)


class OFTAdapter(DeltaAdapter):
    """Diagonal OFT: W's output rows rotated block-wise, W'ₖ = (I + s(Rₖ − I))ᵀ Wₖ, then ``rescale``.

    ``alpha`` is OFT's norm constraint on Q, not a scale.
    """

    name = "oft"

    def __init__(self, loaded_keys, blocks, rescale, alpha) -> None:
        super().__init__(loaded_keys)
        self.blocks, self.rescale = blocks, rescale
        self.constraint = 0.0 if alpha is None else float(alpha)

    @classmethod
    def load(cls, name: str, sd: StateDict, alpha, dora_scale) -> DeltaAdapter | None:
        blocks_key = f"{name}.oft_blocks"
        blocks = sd.get(blocks_key)
        if blocks is None or blocks.dim() not in (3, 4):
            return None
        rescale_key = f"{name}.rescale"
        keys = (blocks_key,) + ((rescale_key,) if rescale_key in sd else ())
        kind = cls if blocks.dim() == 3 else BOFTAdapter
        return kind(keys, blocks, sd.get(rescale_key), alpha)

    def fits(self, shape: torch.Size) -> bool:
        return shape[0] == self.blocks.shape[-3] * self.blocks.shape[-1]

    def rotate(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        blocks = self.blocks.to(weight)
        rotation = _cayley(blocks, self.constraint)
        eye = torch.eye(blocks.shape[-1], dtype=weight.dtype, device=weight.device)
        rotation = eye + strength * (rotation - eye)
        grouped = weight.reshape(blocks.shape[0], blocks.shape[-1], *weight.shape[1:])
        return torch.einsum("knm,kn...->km...", rotation, grouped).reshape(weight.shape)

    def merge(self, weight: torch.Tensor, strength: float, function: Function) -> torch.Tensor:
        rotated = self.rotate(weight, strength)
        if self.rescale is not None:
            rotated = rotated * self.rescale.to(weight).reshape(-1, *[1] * (weight.dim() - 1))
        return weight + function(rotated - weight)


class BOFTAdapter(OFTAdapter):
    """Butterfly OFT: m stages of block rotations, stage i mixing rows 2ⁱ·(b/2) apart.

    Each stage's rotation is blended toward I by strength (as LyCORIS does), then ``rescale``.
    """

    name = "boft"

    def fits(self, shape: torch.Size) -> bool:
        return shape[0] == self.blocks.shape[1] * self.blocks.shape[2]

    def rotate(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        blocks = self.blocks.to(weight)
        stages, _, size, _ = blocks.shape
        rotations = _cayley(blocks, self.constraint)
        eye = torch.eye(size, dtype=weight.dtype, device=weight.device)
        rows = weight
        for stage in range(stages):
            rotation = eye + strength * (rotations[stage] - eye)
            stride = 2**stage * (size // 2)
            # Gather rows that are `stride` apart into contiguous blocks of `size`, rotate, scatter back.
            gathered = rows.unflatten(0, (-1, 2, stride)).transpose(1, 2).flatten(0, 2).unflatten(0, (-1, size))
            gathered = torch.einsum("bij,bj...->bi...", rotation, gathered)
            rows = gathered.flatten(0, 1).unflatten(0, (-1, stride, 2)).transpose(1, 2).flatten(0, 2)
        return rows


LYCORIS_ADAPTERS = (LoHaAdapter, LoKrAdapter, GLoRAAdapter, IA3Adapter, OFTAdapter)
