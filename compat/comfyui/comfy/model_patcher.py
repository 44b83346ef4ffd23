"""ComfyUI's `comfy.model_patcher` for node packs: `ModelPatcher` is Latentgraph's MODEL class
(diffusion.patcher.ModelHandle), which has ComfyUI's patching interface (clone, add_patches,
set_model_attn1_patch, model_options, add_object_patch, ...; see docs/MODEL_INTERFACE.md), so
`isinstance(model, ModelPatcher)` holds for every MODEL our nodes make."""

from diffusion.patcher import ModelHandle as ModelPatcher

__all__ = ["ModelPatcher"]
