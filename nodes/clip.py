"""Text-encoder nodes: prompt encoding (SD1/SD2/SDXL), clip skip and separate text-encoder loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusion import conditioning
from diffusion.text.clip import CLIP, Tokens
from diffusion.text.tokenizer import EmbeddingResolver
from engine import runtime

from nodes import MAX_RESOLUTION
PROMPT = ("STRING", {"multiline": True, "dynamicPrompts": True})


def _services():
    try:
        return runtime.services()
    except LookupError:
        return None


def _embeddings(clip: CLIP) -> EmbeddingResolver | None:
    """Resolve ``embedding:NAME`` inside the embeddings folders (contained paths only)."""
    services = _services()
    if services is None or clip.embeddings is not None:
        return clip.embeddings

    def find_file(name: str) -> Path | None:
        return services.paths.get_full_path("embeddings", name)

    return clip.with_embedding_files(find_file).embeddings


def _tokenize(clip: CLIP, text: str) -> Tokens:
    return clip.tokenize(text, embeddings=_embeddings(clip))


def _encode(clip: CLIP, tokens: Tokens, **extra: Any) -> list[list[Any]]:
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return conditioning.make(cond, pooled, **extra)


def _require_clip(clip: Any) -> CLIP:
    if clip is None:
        raise ValueError(
            "clip input is None: the checkpoint loaded has no text encoder; load one with CLIPLoader"
        )
    return clip


class CLIPTextEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": PROMPT, "clip": ("CLIP",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = "Encodes a prompt with the model's text encoder; supports (word:1.2), [word] and embedding:name."

    def encode(self, clip, text):
        clip = _require_clip(clip)
        return (_encode(clip, _tokenize(clip, text)),)


def _equalise_chunks(clip: CLIP, tokens: Tokens) -> Tokens:
    """SDXL with different text_l / text_g: pad the shorter prompt with empty chunks."""
    longest = max(len(chunks) for chunks in tokens.values())
    return {key: chunks + clip.empty_chunks(key, longest - len(chunks)) for key, chunks in tokens.items()}


class CLIPTextEncodeSDXL:
    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 0, "max": MAX_RESOLUTION}
        return {
            "required": {
                "width": ("INT", {"default": 1024, **size}),
                "height": ("INT", {"default": 1024, **size}),
                "crop_w": ("INT", {"default": 0, **size}),
                "crop_h": ("INT", {"default": 0, **size}),
                "target_width": ("INT", {"default": 1024, **size}),
                "target_height": ("INT", {"default": 1024, **size}),
                "text_g": PROMPT,
                "clip": ("CLIP",),
                "text_l": PROMPT,
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(self, clip, width, height, crop_w, crop_h, target_width, target_height, text_g, text_l):
        clip = _require_clip(clip)
        if "g" not in clip.encoders or "l" not in clip.encoders:
            raise ValueError(f"CLIPTextEncodeSDXL needs an SDXL text encoder (CLIP-L + bigG), got {clip.family}")
        tokens = {"g": _tokenize(clip, text_g)["g"], "l": _tokenize(clip, text_l)["l"]}
        tokens = _equalise_chunks(clip, tokens)
        extra = dict(width=width, height=height, crop_w=crop_w, crop_h=crop_h,
                     target_width=target_width, target_height=target_height)
        return (_encode(clip, tokens, **extra),)


class CLIPTextEncodeSDXLRefiner:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "ascore": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 1000.0, "step": 0.01}),
                "width": ("INT", {"default": 1024, "min": 0, "max": MAX_RESOLUTION}),
                "height": ("INT", {"default": 1024, "min": 0, "max": MAX_RESOLUTION}),
                "text": PROMPT,
                "clip": ("CLIP",),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "advanced/conditioning"

    def encode(self, clip, ascore, width, height, text):
        clip = _require_clip(clip)
        return (_encode(clip, _tokenize(clip, text), aesthetic_score=ascore, width=width, height=height),)


class CLIPSetLastLayer:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip": ("CLIP",),
                "stop_at_clip_layer": ("INT", {"default": -1, "min": -24, "max": -1, "step": 1}),
            }
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "set_last_layer"
    CATEGORY = "conditioning"
    DESCRIPTION = "Clip skip: -1 uses the last layer, -2 the one before (A1111 'clip skip 2')."

    def set_last_layer(self, clip, stop_at_clip_layer):
        clip = _require_clip(clip).clone()
        clip.set_last_layer(stop_at_clip_layer)
        return (clip,)


def _text_encoder_files() -> list[str]:
    services = _services()
    return services.paths.get_filename_list("text_encoders") if services is not None else []


def _load_text_encoders(names: list[str], family: str | None, device: str):
    from diffusion.checkpoint.files import parse_arch_metadata, read_state_dict
    from diffusion.text.loader import load_clip_from_state_dicts

    services = _services()
    if services is None:
        raise RuntimeError("no folder paths available to find text encoders")
    state_dicts, overrides = [], []
    for name in names:
        path = services.paths.get_full_path_or_raise("text_encoders", name)
        state_dict, metadata = read_state_dict(path)
        state_dicts.append(state_dict)
        overrides.append(parse_arch_metadata(metadata))
    manager = None if device == "cpu" else services.model_manager
    return load_clip_from_state_dicts(state_dicts, overrides, family=family, manager=manager)


class CLIPLoader:
    TYPES = ("stable_diffusion",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"clip_name": (_text_encoder_files(),), "type": (list(cls.TYPES),)},
            "optional": {"device": (["default", "cpu"], {"advanced": True})},
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "Loads one text encoder: CLIP-L → SD1, OpenCLIP ViT-H → SD2, bigG → SDXL refiner."

    def load_clip(self, clip_name, type="stable_diffusion", device="default"):
        if type not in self.TYPES:
            raise ValueError(f"CLIPLoader type {type!r} is not supported; supported: {', '.join(self.TYPES)}")
        return (_load_text_encoders([clip_name], None, device),)


class DualCLIPLoader:
    TYPES = ("sdxl",)

    @classmethod
    def INPUT_TYPES(cls):
        files = _text_encoder_files()
        return {
            "required": {"clip_name1": (files,), "clip_name2": (files,), "type": (list(cls.TYPES),)},
            "optional": {"device": (["default", "cpu"], {"advanced": True})},
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"
    DESCRIPTION = "Loads SDXL's two text encoders (CLIP-L and OpenCLIP bigG) from separate files."

    def load_clip(self, clip_name1, clip_name2, type="sdxl", device="default"):
        if type not in self.TYPES:
            raise ValueError(f"DualCLIPLoader type {type!r} is not supported; supported: {', '.join(self.TYPES)}")
        return (_load_text_encoders([clip_name1, clip_name2], "sdxl", device),)


NODE_CLASS_MAPPINGS = {
    "CLIPTextEncode": CLIPTextEncode,
    "CLIPTextEncodeSDXL": CLIPTextEncodeSDXL,
    "CLIPTextEncodeSDXLRefiner": CLIPTextEncodeSDXLRefiner,
    "CLIPSetLastLayer": CLIPSetLastLayer,
    "CLIPLoader": CLIPLoader,
    "DualCLIPLoader": DualCLIPLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "CLIPTextEncodeSDXL": "CLIPTextEncodeSDXL",
    "CLIPTextEncodeSDXLRefiner": "CLIPTextEncodeSDXLRefiner",
    "CLIPSetLastLayer": "CLIP Set Last Layer",
    "CLIPLoader": "Load CLIP",
    "DualCLIPLoader": "DualCLIPLoader",
}
