"""ComfyUI's ``model_options``: the hooks a MODEL carries into the UNet and the guidance code.

:class:`ModelOptions` gives a handle ComfyUI's ``ModelPatcher`` setters, which record callables
under ComfyUI's keys; the UNet (``transformer_options["patches"]`` / ``["patches_replace"]``) and
:mod:`diffusion.sampling.guidance` (cfg functions, the UNet wrapper) call them with ComfyUI's
arguments. docs/MODEL_INTERFACE.md §2 lists each hook, where it runs and what it receives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any


def new_model_options() -> dict[str, Any]:
    """An empty ``model_options`` as ComfyUI starts one."""
    return {"transformer_options": {}}


def copy_nested(options: Mapping[str, Any]) -> dict[str, Any]:
    """A clone's ``model_options``: nested dicts and lists copied, the objects in them shared."""

    def copy(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy(v) for v in value]
        return value

    return copy(options)


class ModelOptions:
    """ComfyUI's hook setters over ``self.model_options`` (a mixin for the MODEL handle)."""

    model_options: dict[str, Any]

    def _transformer_options(self) -> dict[str, Any]:
        return self.model_options.setdefault("transformer_options", {})

    # attention and block patches (run inside the UNet) -----------------------------------------
    def set_model_patch(self, patch: Callable, name: str) -> None:
        """Append `patch` to ``transformer_options["patches"][name]``."""
        patches = self._transformer_options().setdefault("patches", {})
        patches[name] = patches.get(name, []) + [patch]

    def set_model_patch_replace(
        self, patch: Callable, name: str, block_name: str, number: int, transformer_index: int | None = None
    ) -> None:
        """Replace attention `name` ("attn1"/"attn2") at (block_name, number[, transformer_index])."""
        replace = self._transformer_options().setdefault("patches_replace", {})
        block = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
        replace[name] = {**replace.get(name, {}), block: patch}

    def set_model_attn1_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "attn1_patch")

    def set_model_attn2_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "attn2_patch")

    def set_model_attn1_replace(self, patch: Callable, block_name: str, number: int, transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch: Callable, block_name: str, number: int, transformer_index: int | None = None) -> None:
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)

    def set_model_attn1_output_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "attn1_output_patch")

    def set_model_attn2_output_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "attn2_output_patch")

    def set_model_input_block_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "input_block_patch")

    def set_model_input_block_patch_after_skip(self, patch: Callable) -> None:
        self.set_model_patch(patch, "input_block_patch_after_skip")

    def set_model_output_block_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "output_block_patch")

    def set_model_emb_patch(self, patch: Callable) -> None:
        self.set_model_patch(patch, "emb_patch")

    # around the model call and the guidance (run by diffusion.sampling.guidance) -----------------
    def set_model_unet_function_wrapper(self, wrapper: Callable) -> None:
        """``wrapper(apply_model, {"input", "timestep", "c", "cond_or_uncond"}) -> denoised``."""
        self.model_options["model_function_wrapper"] = wrapper

    def set_model_sampler_cfg_function(self, function: Callable, disable_cfg1_optimization: bool = False) -> None:
        """Replace ``uncond + (cond − uncond)·scale``; 3-argument functions get (cond, uncond, scale)."""
        if len(inspect.signature(function).parameters) == 3:
            legacy = function
            function = lambda args: legacy(args["cond"], args["uncond"], args["cond_scale"])
        self.model_options["sampler_cfg_function"] = function
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True

    def set_model_sampler_pre_cfg_function(self, function: Callable, disable_cfg1_optimization: bool = False) -> None:
        self._append_option("sampler_pre_cfg_function", function, disable_cfg1_optimization)

    def set_model_sampler_post_cfg_function(self, function: Callable, disable_cfg1_optimization: bool = False) -> None:
        self._append_option("sampler_post_cfg_function", function, disable_cfg1_optimization)

    def set_model_denoise_mask_function(self, function: Callable) -> None:
        """``function(sigma, denoise_mask, extra_options={"model", "sigmas"}) -> mask`` each step."""
        self.model_options["denoise_mask_function"] = function

    def _append_option(self, name: str, function: Callable, disable_cfg1_optimization: bool) -> None:
        self.model_options[name] = self.model_options.get(name, []) + [function]
        if disable_cfg1_optimization:
            self.model_options["disable_cfg1_optimization"] = True
