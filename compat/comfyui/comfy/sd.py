"""ComfyUI's `comfy.sd` for node packs: checkpoint loading and LoRA application on our MODEL/CLIP/VAE.

`VAE` and `CLIP` are Latentgraph's classes (diffusion.vae.VAEHandle, diffusion.text.clip.CLIP),
which speak ComfyUI's interface (`vae.decode`/`encode`, `clip.tokenize`/`encode_from_tokens`,
`clone`, `add_patches`), so `isinstance` checks and calls in packs work on values our nodes make.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusion.text.clip import CLIP
from diffusion.vae import VAEHandle as VAE
from engine import runtime

__all__ = ["CLIP", "VAE", "load_checkpoint_guess_config", "load_lora_for_models"]


def _manager() -> Any:
    manager = runtime.services().model_manager
    if manager is None:
        raise RuntimeError("no model manager configured: start the runtime through app.bootstrap")
    return manager


def load_checkpoint_guess_config(ckpt_path: str | Path, output_vae: bool = True, output_clip: bool = True,
                                 output_clipvision: bool = False, embedding_directory: Any = None,
                                 output_model: bool = True, model_options: dict | None = None,
                                 te_model_options: dict | None = None) -> tuple[Any, Any, Any, Any]:
    """(model, clip, vae, clipvision) from a single-file checkpoint; family detected from the file.
    `clipvision` is the CLIP vision tower an unCLIP checkpoint carries when asked for (else None)."""
    from diffusion.checkpoint.loader import load_checkpoint
    from diffusion.clip_vision.loader import ClipVisionError, load_clip_vision

    loaded = load_checkpoint(ckpt_path, _manager(), load_clip=output_clip, load_vae=output_vae)
    clip_vision = None
    if output_clipvision:
        try:
            clip_vision = load_clip_vision(ckpt_path, _manager())
        except ClipVisionError:
            clip_vision = None
    return (loaded.model if output_model else None, loaded.clip, loaded.vae, clip_vision)


def load_lora_for_models(model: Any, clip: Any, lora: dict, strength_model: float,
                         strength_clip: float) -> tuple[Any, Any]:
    """Clones of `model` and `clip` patched with the LoRA state dict `lora` (inputs untouched)."""
    from diffusion.lora.apply import apply_lora

    applied = apply_lora(model, clip, lora, strength_model, strength_clip)
    return applied.model, applied.clip
