"""A CLIP loaded through the checkpoint loader (memory-mapped fp16 file) equals load_clip on the weights."""

import torch

from diffusion.checkpoint.loader import load_checkpoint
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.memory import ModelManager
from diffusion.text.loader import load_clip
from diffusion.text.tiny import tiny_text_arch_overrides, tiny_text_encoder_state_dict


def test_checkpoint_clip_matches_direct_load(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "tiny-sd2.safetensors", "sd2", seed=4, dtype=torch.float16)
    loaded = load_checkpoint(path, ModelManager(device="cpu"), load_vae=False)
    assert loaded.clip is not None and loaded.clip.family == "sd2"
    weights = {k: (v.half().float() if v.is_floating_point() else v) for k, v in tiny_text_encoder_state_dict("sd2", 4).items()}
    direct = load_clip(weights, "sd2", tiny_text_arch_overrides("sd2"))
    tokens = direct.tokenize("a (castle:1.2) on a hill")
    assert torch.allclose(loaded.clip.encode_from_tokens(tokens), direct.encode_from_tokens(tokens), atol=1e-6)
