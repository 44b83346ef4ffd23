"""GLIGEN: a UNet call with grounded boxes equals diffusers' gated UNet2DConditionModel on the same
tiny weights; GLIGENTextBoxApply accumulates boxes; the UI workflow runs through the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from cli.run import main
from diffusion.checkpoint import load_checkpoint
from diffusion.checkpoint.files import read_state_dict
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from diffusion.gligen import MAX_OBJECTS, append_box, load_gligen
from diffusion.memory import ModelManager
from tests.models.diffusers_reference import diffusers_unet_config
from tools.make_tiny_gligen import write_tiny_gligen

WORKFLOWS = Path(__file__).parent / "workflows"


def diffusers_gated_unet(checkpoint: Path, gligen: Path, cfg):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    state, _ = read_state_dict(checkpoint)
    grounding, _ = read_state_dict(gligen)
    config = {**diffusers_unet_config(cfg), "attention_type": "gated"}
    converted = convert_ldm_unet_checkpoint({**state, **grounding}, config)
    prefix = "model.diffusion_model.position_net."
    converted.update({"position_net." + k[len(prefix):]: v for k, v in grounding.items() if k.startswith(prefix)})
    model = UNet2DConditionModel(**config).eval()
    model.load_state_dict(converted, strict=True)
    return model


def test_unet_call_with_boxes_equals_diffusers_gated_unet(tmp_path):
    manager = ModelManager("cpu")
    checkpoint = write_tiny_checkpoint(tmp_path / "sd1.safetensors", "sd1", include_text=False)
    gligen_path = write_tiny_gligen(tmp_path / "gligen.safetensors", seed=4)
    loaded = load_checkpoint(checkpoint, manager, load_clip=False, load_vae=False)
    gligen = load_gligen(gligen_path, manager)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=generator)
    t = torch.tensor([700.0, 90.0])
    context = torch.randn(2, 77, 32, generator=generator)
    pooled = torch.randn(2, 32, generator=generator)
    boxes = [(pooled[0], 4, 6, 0, 2), (pooled[1], 3, 3, 5, 0)]  # (pooled, h, w, y, x) in latent cells

    patch = gligen.set_position(x.shape, boxes, x.device)
    ours = loaded.model.apply_model(x, t, context, transformer_options={"patches": {"middle_patch": [patch]}})
    plain = loaded.model.apply_model(x, t, context)

    reference = diffusers_gated_unet(checkpoint, gligen_path, loaded.info.unet)
    box_tensor = torch.zeros(2, MAX_OBJECTS, 4)
    box_tensor[:, 0] = torch.tensor([2 / 8, 0 / 8, 8 / 8, 4 / 8])
    box_tensor[:, 1] = torch.tensor([0 / 8, 5 / 8, 3 / 8, 8 / 8])
    embeddings = torch.zeros(2, MAX_OBJECTS, 32)
    embeddings[:, :2] = pooled
    masks = torch.zeros(2, MAX_OBJECTS)
    masks[:, :2] = 1
    with torch.no_grad():
        theirs = reference(x, t, encoder_hidden_states=context, cross_attention_kwargs={
            "gligen": {"boxes": box_tensor, "positive_embeddings": embeddings, "masks": masks}}).sample
    assert (ours - plain).abs().max() > 1e-3  # the boxes change the prediction
    assert (ours - theirs).abs().max() <= 1e-4


def test_text_boxes_accumulate_in_latent_cells(tmp_path):
    gligen = load_gligen(write_tiny_gligen(tmp_path / "g.safetensors"), ModelManager("cpu"))
    base = [[torch.zeros(1, 77, 32), {}]]
    one = append_box(base, gligen, torch.ones(1, 32), 64, 32, 8, 16)
    two = append_box(one, gligen, torch.zeros(1, 32), 16, 16, 0, 0)
    kind, model, params = two[0][1]["gligen"]
    assert kind == "position" and model is gligen
    assert [p[1:] for p in params] == [(4, 8, 2, 1), (2, 2, 0, 0)]
    assert "gligen" not in base[0][1] and len(one[0][1]["gligen"][2]) == 1  # inputs unchanged


def run_workflow(base: Path, text: str) -> np.ndarray:
    from PIL import Image

    workflow = (WORKFLOWS / "gligen_box.json").read_text().replace("BOX_TEXT", text)
    path = base / f"gligen_{len(text)}.json"
    path.write_text(workflow)
    out, err = io.StringIO(), io.StringIO()
    code = main([str(path), "--base-directory", str(base), "--no-progress", "--cpu"], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    written = [Path(line) for line in out.getvalue().splitlines() if line.strip()]
    with Image.open(written[0]) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.slow
def test_gligen_box_ui_workflow_runs_through_the_cli(tmp_path):
    base = tmp_path / "base"
    write_tiny_checkpoint(base / "models" / "checkpoints" / "tiny_sd1.safetensors", "sd1")
    write_tiny_gligen(base / "models" / "gligen" / "tiny-gligen-sd1.safetensors")
    first, second = run_workflow(base, "a red ball"), run_workflow(base, "a tall green tree")
    assert first.shape == (64, 64, 3)
    assert np.abs(first - second).max() > 0  # the box text reaches the UNet
