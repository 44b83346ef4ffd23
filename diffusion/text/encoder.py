"""One CLIP text encoder as SD uses it: chunks in, weighted hidden states (and pooled output) out."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import torch

from diffusion.text.arch import BOS_TOKEN, CONTEXT_LENGTH, EOS_TOKEN, EncoderArch, EncoderSlot
from diffusion.text.model import TextModel, canonical_to_model_keys
from diffusion.text.tokenizer import Chunk, EmbeddingVector
from diffusion.weight_patches import KeyPatches, PatchedWeights

# Stand-in id at textual-inversion slots before their vectors are swapped in; any id but EOS works
# (transformers pools at the first EOS).
_PLACEHOLDER_ID = 0


class TextEncoder:
    """A transformers CLIP text model plus the SD rules for which hidden state to use.

    The model is shared between CLIP clones; its weights change only through :attr:`weights`
    (the patch set of the CLIP being encoded) and a forward hook that lives only for the duration
    of one call with textual-inversion slots.
    """

    def __init__(self, slot: EncoderSlot, arch: EncoderArch, model: TextModel, manager=None) -> None:
        self.slot = slot
        self.arch = arch
        self.model = model
        self.manager = manager
        offload = manager.offload_device if manager is not None else torch.device("cpu")
        self.weights = PatchedWeights(model, self.state_dict_keys(), offload)

    @property
    def key_prefix(self) -> str:
        """ComfyUI's state-dict prefix of this encoder inside a CLIP (``clip_l.transformer.``)."""
        return f"clip_{self.slot.token_key}.transformer."

    def state_dict_keys(self) -> dict[str, str]:
        """ComfyUI key (HF ``CLIPTextModel`` layout under :attr:`key_prefix`) → parameter name."""
        keys = {}
        for canonical, name in canonical_to_model_keys(self.model).items():
            local = canonical if canonical == "text_projection.weight" else "text_model." + canonical
            keys[self.key_prefix + local] = name
        return keys

    @property
    def width(self) -> int:
        return self.arch.width

    @property
    def text_model(self):
        """The bare transformer (transformers ≥ 5.6 flattened CLIPTextModel or `.text_model`)."""
        return getattr(self.model, "text_model", self.model)

    def empty_chunk(self) -> Chunk:
        chunk: Chunk = [(BOS_TOKEN, 1.0), (EOS_TOKEN, 1.0)]
        return chunk + [(self.slot.pad_token, 1.0)] * (CONTEXT_LENGTH - 2)

    def prepare(self, patches: KeyPatches, patches_id: object) -> torch.device:
        """Place the model on the compute device holding `patches`; returns that device."""
        if self.manager is not None:
            self.manager.load(self.model, f"text encoder {self.slot.name}")
        self.weights.apply(patches, patches_id)
        return next(self.model.parameters()).device

    def _token_ids(self, batch: list[Chunk], device: torch.device) -> torch.Tensor:
        """Id tensor [len(batch), 77]; malformed chunks (e.g. built by a custom node) are refused clearly."""
        rows = []
        for index, chunk in enumerate(batch):
            if len(chunk) != self.arch.positions:
                raise ValueError(f"{self.slot.name}: token chunk {index} has {len(chunk)} tokens, expected {self.arch.positions}")
            row = [_PLACEHOLDER_ID if isinstance(item[0], EmbeddingVector) else item[0] for item in chunk]
            bad = [t for t in row if not isinstance(t, numbers.Integral) or not 0 <= t < self.arch.vocab_size]
            if bad:
                raise ValueError(f"{self.slot.name}: token ids outside the vocabulary: {bad[:3]}")
            rows.append(row)
        return torch.tensor([[int(t) for t in row] for row in rows], dtype=torch.long, device=device)

    def encode(
        self,
        chunks: list[Chunk],
        layer: int | None = None,
        patches: KeyPatches | None = None,
        patches_id: object = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond [1, 77·len(chunks), width] float32, pooled [1, P] float32 from the first chunk).

        `layer` is a hidden-state index (−1 last, −2 penultimate, …); None uses the family default.
        `patches` (identified by `patches_id`) are merged into the weights first; keys of other
        encoders are ignored.
        Weights are applied as ``z_empty + w·(z − z_empty)`` with z_empty the empty prompt's encoding.
        """
        if not chunks:
            raise ValueError("nothing to encode: no token chunks")
        layer = self.slot.default_layer if layer is None else layer
        if layer == 0:
            raise ValueError(f"{self.slot.name}: layer 0 is the embedding output, not a transformer layer")
        if abs(layer) > self.arch.layers:
            layer = -1  # a clip skip deeper than this encoder means its last layer (as ComfyUI does)
        weighted = any(item[1] != 1.0 for chunk in chunks for item in chunk)
        batch = list(chunks) + ([self.empty_chunk()] if weighted else [])
        device = self.prepare(patches or {}, patches_id)
        ids = self._token_ids(batch, device)
        # no_grad rather than inference_mode: conditioning tensors flow on to nodes that may modify
        # their own copies in place, which inference tensors forbid.
        with torch.no_grad(), self._embedding_slots(batch, device):
            out = self.model(input_ids=ids, output_hidden_states=True)
            hidden = out.hidden_states[layer]
            if self.slot.layer_norm_hidden:
                hidden = self.text_model.final_layer_norm(hidden)
        pooled = out.text_embeds if hasattr(out, "text_embeds") and out.text_embeds is not None else out.pooler_output
        hidden = hidden.float()
        if weighted:
            weights = torch.tensor([[item[1] for item in chunk] for chunk in chunks], dtype=hidden.dtype, device=hidden.device)
            empty = hidden[-1:]
            hidden = empty + weights[..., None] * (hidden[: len(chunks)] - empty)
        cond = hidden[: len(chunks)].reshape(1, -1, hidden.shape[-1])
        return cond.cpu(), pooled[:1].float().cpu()

    @contextlib.contextmanager
    def _embedding_slots(self, batch: list[Chunk], device: torch.device) -> Iterator[None]:
        slots = [
            (row, col, item[0].vector)
            for row, chunk in enumerate(batch)
            for col, item in enumerate(chunk)
            if isinstance(item[0], EmbeddingVector)
        ]
        if not slots:
            yield
            return
        for _, _, vector in slots:
            if vector.shape[-1] != self.width:
                raise ValueError(f"embedding vector width {vector.shape[-1]} does not match {self.slot.name} width {self.width}")

        def replace(_module, _inputs, output: torch.Tensor) -> torch.Tensor:
            output = output.clone()
            for row, col, vector in slots:
                output[row, col] = vector.to(device=output.device, dtype=output.dtype)
            return output

        handle = self.text_model.embeddings.token_embedding.register_forward_hook(replace)
        try:
            yield
        finally:
            handle.remove()

    def size_bytes(self) -> int:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)
