"""`comfy.clip_vision` and `comfy.sd.load_checkpoint_guess_config(output_clipvision=True)` for packs
(IP-Adapter style) return our CLIP vision values with ComfyUI's call shapes."""

from __future__ import annotations

import importlib

import torch

from diffusion.clip_vision.encoder import ClipVisionModel
from diffusion.memory import ModelManager
from engine.loader import enable_comfyui_compat
from engine.paths import FolderPaths
from engine.runtime import Services, using_services
from tools.make_tiny_clip_vision import write_tiny_clip_vision
from tools.make_tiny_unclip_checkpoint import write_tiny_unclip_checkpoint


def test_packs_load_encode_and_get_the_unclip_tower(tmp_path):
    enable_comfyui_compat()
    clip_vision = importlib.import_module("comfy.clip_vision")
    sd = importlib.import_module("comfy.sd")
    services = Services(paths=FolderPaths(tmp_path), model_manager=ModelManager("cpu"))
    with using_services(services):
        model = clip_vision.load(write_tiny_clip_vision(tmp_path / "cv.safetensors", "open_clip"))
        output = model.encode_image(torch.rand(1, 30, 40, 3), crop=False)
        assert output["penultimate_hidden_states"].shape == (1, 5, 32)
        pixels = clip_vision.clip_preprocess(torch.rand(1, 30, 40, 3), size=28, crop=True)
        assert pixels.shape == (1, 3, 28, 28)
        checkpoint = write_tiny_unclip_checkpoint(tmp_path / "unclip.safetensors")
        *_, tower = sd.load_checkpoint_guess_config(checkpoint, output_clipvision=True)
        assert isinstance(tower, ClipVisionModel)
        assert sd.load_checkpoint_guess_config(checkpoint)[3] is None
