"""ComfyUI UI-format ControlNet workflows run through `main.py run` on tiny SD1 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.test_core_node_workflows import conditioning_nodes, invoke, run_workflow, ui_workflow
from tools.make_tiny_checkpoint import make_tiny_checkpoint
from tools.make_tiny_controlnet import make_tiny_controlnet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("base")
    make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / "tiny_sd1.safetensors")
    make_tiny_controlnet("sd1", base / "models" / "controlnet" / "canny-ldm.safetensors", "ldm", seed=1)
    make_tiny_controlnet("sd1", base / "models" / "controlnet" / "scribble-diffusers.safetensors", "diffusers", seed=2)
    make_tiny_controlnet("sd1", base / "models" / "t2i_adapter" / "depth-t2i.safetensors", "t2i-depth", seed=3)
    (base / "input").mkdir(parents=True, exist_ok=True)
    pixels = np.full((64, 64, 3), 230, dtype=np.uint8)
    pixels[16:48, 20:44] = 30  # a dark box on a light page: edges, lines and "depth" to find
    Image.fromarray(pixels, "RGB").save(base / "input" / "drawing.png")
    return base


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def hires_controlnet_workflow() -> dict:
    nodes, links = conditioning_nodes()
    nodes.update({10: ("LoadImage", ["drawing.png", "image"]), 11: ("Canny", [0.4, 0.8]),
                  12: ("ControlNetLoader", ["canny-ldm.safetensors"]),
                  13: ("ControlNetApplyAdvanced", [0.9, 0.0, 1.0]), 5: ("EmptyLatentImage", [64, 64, 1]),
                  3: ("KSampler", [7, "fixed", 2, 4.0, "euler", "normal", 1.0]),
                  14: ("LatentUpscaleBy", ["nearest-exact", 1.5]),
                  15: ("KSampler", [8, "fixed", 2, 4.0, "euler", "normal", 0.5]),
                  8: ("VAEDecode", []), 9: ("SaveImage", ["hires_cn"])})
    links += [(10, 0, 11, "image", "IMAGE"), (6, 0, 13, "positive", "CONDITIONING"),
              (7, 0, 13, "negative", "CONDITIONING"), (12, 0, 13, "control_net", "CONTROL_NET"),
              (11, 0, 13, "image", "IMAGE"), (4, 0, 3, "model", "MODEL"), (13, 0, 3, "positive", "CONDITIONING"),
              (13, 1, 3, "negative", "CONDITIONING"), (5, 0, 3, "latent_image", "LATENT"),
              (3, 0, 14, "samples", "LATENT"), (4, 0, 15, "model", "MODEL"), (13, 0, 15, "positive", "CONDITIONING"),
              (13, 1, 15, "negative", "CONDITIONING"), (14, 0, 15, "latent_image", "LATENT"),
              (15, 0, 8, "samples", "LATENT"), (4, 2, 8, "vae", "VAE"), (8, 0, 9, "images", "IMAGE")]
    return ui_workflow(nodes, links)


def test_controlnet_with_hires_fix(base, tmp_path):
    (path,), _ = run_workflow(base, tmp_path, hires_controlnet_workflow())
    with Image.open(path) as image:
        assert image.size == (96, 96)  # the second pass's hint is resized to the upscaled latent
    workflow = tmp_path / "again.json"
    workflow.write_text((tmp_path / "workflow.json").read_text())
    code, out, err = invoke(workflow, "--base-directory", base, "--set", "13.strength=0")
    assert code == 0, err
    assert np.abs(_pixels(path) - _pixels(Path(out.strip()))).max() > 0, "the ControlNet must reach the image"


def test_two_mixed_controlnets_stacked(base, tmp_path):
    nodes, links = conditioning_nodes()
    nodes.update({10: ("LoadImage", ["drawing.png", "image"]), 11: ("Canny", [0.3, 0.6]),
                  16: ("ScribbleThreshold", [0.5, True]), 17: ("DepthFromImage", [False, True]),
                  12: ("ControlNetLoader", ["canny-ldm.safetensors"]),
                  18: ("ControlNetLoader", ["scribble-diffusers.safetensors"]),
                  13: ("ControlNetApplyAdvanced", [0.8, 0.0, 1.0]), 19: ("ControlHint", [0.6, 0.2, 0.8]),
                  20: ("ControlNetApply", [0.5]),
                  5: ("EmptyLatentImage", [64, 48, 2]), 3: ("KSampler", [7, "fixed", 2, 4.0, "euler", "normal", 1.0]),
                  8: ("VAEDecode", []), 9: ("SaveImage", ["two_cn"])})
    links += [(10, 0, 11, "image", "IMAGE"), (10, 0, 16, "image", "IMAGE"), (10, 0, 17, "image", "IMAGE"),
              (6, 0, 13, "positive", "CONDITIONING"), (7, 0, 13, "negative", "CONDITIONING"),
              (12, 0, 13, "control_net", "CONTROL_NET"), (11, 0, 13, "image", "IMAGE"),
              (13, 0, 19, "positive", "CONDITIONING"), (13, 1, 19, "negative", "CONDITIONING"),
              (18, 0, 19, "control_net", "CONTROL_NET"), (16, 0, 19, "image", "IMAGE"),
              (19, 0, 20, "conditioning", "CONDITIONING"), (12, 0, 20, "control_net", "CONTROL_NET"),
              (17, 0, 20, "image", "IMAGE"),
              (4, 0, 3, "model", "MODEL"), (20, 0, 3, "positive", "CONDITIONING"),
              (19, 1, 3, "negative", "CONDITIONING"), (5, 0, 3, "latent_image", "LATENT"),
              (3, 0, 8, "samples", "LATENT"), (4, 2, 8, "vae", "VAE"), (8, 0, 9, "images", "IMAGE")]
    paths, _ = run_workflow(base, tmp_path, ui_workflow(nodes, links))
    assert len(paths) == 2
    with Image.open(paths[0]) as image:
        assert image.size == (64, 48)  # a square hint centre-cropped to a 4:3 latent


def test_t2i_depth_adapter(base, tmp_path):
    nodes, links = conditioning_nodes()
    nodes.update({10: ("LoadImage", ["drawing.png", "image"]), 11: ("DepthFromImage", [True, True]),
                  12: ("ControlNetLoader", ["depth-t2i.safetensors"]), 13: ("ControlNetApplyAdvanced", [1.0, 0.0, 0.6]),
                  5: ("EmptyLatentImage", [64, 64, 1]), 3: ("KSampler", [7, "fixed", 2, 4.0, "euler", "normal", 1.0]),
                  8: ("VAEDecode", []), 9: ("SaveImage", ["t2i_depth"])})
    links += [(10, 0, 11, "image", "IMAGE"), (6, 0, 13, "positive", "CONDITIONING"),
              (7, 0, 13, "negative", "CONDITIONING"), (12, 0, 13, "control_net", "CONTROL_NET"),
              (11, 0, 13, "image", "IMAGE"), (4, 0, 3, "model", "MODEL"), (13, 0, 3, "positive", "CONDITIONING"),
              (13, 1, 3, "negative", "CONDITIONING"), (5, 0, 3, "latent_image", "LATENT"),
              (3, 0, 8, "samples", "LATENT"), (4, 2, 8, "vae", "VAE"), (8, 0, 9, "images", "IMAGE")]
    (path,), _ = run_workflow(base, tmp_path, ui_workflow(nodes, links))
    code, out, err = invoke(tmp_path / "workflow.json", "--base-directory", base, "--set", "13.strength=0")
    assert code == 0, err
    assert np.abs(_pixels(path) - _pixels(Path(out.strip()))).max() > 0, "the adapter must reach the image"
