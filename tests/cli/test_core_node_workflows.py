"""ComfyUI UI-format workflows of issue 13's areas, run through `main.py run` on a tiny SD1
checkpoint: outpainting, noisy latent composition, and inpainting from a stale file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from cli.run import main
from tools.make_tiny_checkpoint import make_tiny_checkpoint

pytestmark = pytest.mark.slow
CKPT = "tiny_sd1.safetensors"


def ui_workflow(nodes: dict[int, tuple[str, list]], links: list[tuple[int, int, int, str, str]]) -> dict:
    """A ComfyUI (schema 0.4) workflow from {id: (type, widgets_values)} and
    (from_id, from_slot, to_id, input_name, type) links, with the slots the editor would write."""
    out = {i: {"id": i, "type": t, "mode": 0, "pos": [0, 0], "inputs": [], "outputs": [], "widgets_values": w}
           for i, (t, w) in nodes.items()}
    table = []
    for link_id, (src, slot, dst, name, kind) in enumerate(links, start=1):
        target = out[dst]["inputs"]
        target.append({"name": name, "type": kind, "link": link_id})
        outputs = out[src]["outputs"]
        while len(outputs) <= slot:
            outputs.append({"name": kind, "type": kind, "links": []})
        outputs[slot]["links"].append(link_id)
        table.append([link_id, src, slot, dst, len(target) - 1, kind])
    return {"last_node_id": max(out), "last_link_id": len(table), "nodes": list(out.values()), "links": table,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def conditioning_nodes() -> tuple[dict, list]:
    nodes = {4: ("CheckpointLoaderSimple", [CKPT]), 6: ("CLIPTextEncode", ["a house by a lake"]),
             7: ("CLIPTextEncode", ["blurry"])}
    links = [(4, 1, 6, "clip", "CLIP"), (4, 1, 7, "clip", "CLIP")]
    return nodes, links


def invoke(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv] + ["--no-progress", "--cpu"], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("base")
    make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / CKPT)
    (base / "input").mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[16:32, 24:40, 3] = 0  # a transparent hole to inpaint
    Image.fromarray(pixels, "RGBA").save(base / "input" / "photo.png")
    return base


def run_workflow(base: Path, tmp_path: Path, workflow: dict) -> tuple[list[Path], str]:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(workflow))
    code, out, err = invoke(path, "--base-directory", base)
    assert code == 0, err
    return [Path(line) for line in out.splitlines() if line.strip()], err


def test_outpaint_workflow(base, tmp_path):
    nodes, links = conditioning_nodes()
    nodes.update({10: ("LoadImage", ["photo.png", "image"]), 11: ("ImagePadForOutpaint", [0, 16, 0, 0, 8]),
                  12: ("VAEEncodeForInpaint", [4]),
                  3: ("KSampler", [7, "fixed", 2, 4.0, "euler", "normal", 1.0]),
                  8: ("VAEDecode", []), 9: ("SaveImage", ["outpaint"]), 13: ("MaskPreview", [])})
    links += [(10, 0, 11, "image", "IMAGE"), (11, 0, 12, "pixels", "IMAGE"), (4, 2, 12, "vae", "VAE"),
              (11, 1, 12, "mask", "MASK"), (11, 1, 13, "mask", "MASK"), (4, 0, 3, "model", "MODEL"),
              (6, 0, 3, "positive", "CONDITIONING"), (7, 0, 3, "negative", "CONDITIONING"),
              (12, 0, 3, "latent_image", "LATENT"), (3, 0, 8, "samples", "LATENT"), (4, 2, 8, "vae", "VAE"),
              (8, 0, 9, "images", "IMAGE")]
    files, err = run_workflow(base, tmp_path, ui_workflow(nodes, links))
    assert "warning" not in err
    with Image.open(files[0]) as png:
        assert png.size == (64, 64)  # 48 rows + 16 padded on top
        assert json.loads(png.text["prompt"])["11"]["class_type"] == "ImagePadForOutpaint"
    previews = sorted((base / "temp").glob("*.png"), key=lambda p: p.stat().st_mtime)
    with Image.open(previews[-1]) as mask:  # the outpaint mask: padded band white, deep inside black
        grey = np.asarray(mask.convert("L"))
        assert grey.shape == (64, 64) and grey[:16].min() == 255 and grey[40:, 20:40].max() == 0
        # feathered seam below the padded top: ((8 - d) / 8)² at d rows into the old image
        expected = [((8 - d) / 8) ** 2 * 255 for d in range(8)] + [0]
        np.testing.assert_allclose(grey[16:25, 30], expected, atol=1.0)


def test_noisy_latent_composition_workflow(base, tmp_path):
    nodes, links = conditioning_nodes()
    first_pass = ["enable", 1, "fixed", 4, 4.0, "euler", "normal", 0, 2, "enable"]
    nodes.update({5: ("EmptyLatentImage", [64, 64, 1]), 15: ("EmptyLatentImage", [32, 32, 1]),
                  3: ("KSamplerAdvanced", first_pass), 13: ("KSamplerAdvanced", [*first_pass[:1], 2, *first_pass[2:]]),
                  20: ("LatentComposite", [16, 16, 16]),
                  21: ("KSamplerAdvanced", ["disable", 0, "fixed", 4, 4.0, "euler", "normal", 2, 10000, "disable"]),
                  8: ("VAEDecode", []), 9: ("SaveImage", ["composition"]),
                  30: ("SaveLatent", ["lat/background"]), 31: ("SaveLatent", ["lat/subject"]),
                  32: ("SaveLatent", ["lat/composite"])})
    for sampler, latent in ((3, 5), (13, 15), (21, 20)):
        links += [(4, 0, sampler, "model", "MODEL"), (6, 0, sampler, "positive", "CONDITIONING"),
                  (7, 0, sampler, "negative", "CONDITIONING"), (latent, 0, sampler, "latent_image", "LATENT")]
    links += [(3, 0, 20, "samples_to", "LATENT"), (13, 0, 20, "samples_from", "LATENT"),
              (21, 0, 8, "samples", "LATENT"), (4, 2, 8, "vae", "VAE"), (8, 0, 9, "images", "IMAGE"),
              (3, 0, 30, "samples", "LATENT"), (13, 0, 31, "samples", "LATENT"), (20, 0, 32, "samples", "LATENT")]
    files, err = run_workflow(base, tmp_path, ui_workflow(nodes, links))
    assert "warning" not in err
    saved = {p.name.split("_")[0]: load_file(str(p))["latent_tensor"].numpy() for p in files if p.suffix == ".latent"}
    background, subject, composite = saved["background"], saved["subject"], saved["composite"]
    assert background.shape == (1, 4, 8, 8) and subject.shape == (1, 4, 4, 4)
    assert np.abs(background).mean() > 0.1 and np.abs(subject).mean() > 0.1  # still noisy halfway
    ramp = np.array([0.5, 1.0, 1.0, 0.5])  # 16 px feather = 2 cells on every inner side
    mask = ramp[:, None] * ramp[None, :]
    expected = background.copy()
    expected[..., 2:6, 2:6] = subject * mask + background[..., 2:6, 2:6] * (1 - mask)
    np.testing.assert_allclose(composite, expected, rtol=1e-5, atol=1e-6)
    with Image.open([p for p in files if p.suffix == ".png"][0]) as png:
        assert png.size == (64, 64)


def inpaint_nodes(grow_widgets: list) -> tuple[dict, list]:
    nodes, links = conditioning_nodes()
    nodes.update({10: ("LoadImage", ["photo.png", "image"]), 12: ("VAEEncodeForInpaint", grow_widgets),
                  14: ("GrowMask", [2, True]), 15: ("FeatherMask", [4, 4, 4, 4]),
                  3: ("KSampler", [3, "fixed", 2, 4.0, "euler", "normal", 1.0]),
                  8: ("VAEDecode", []), 9: ("SaveImage", ["inpaint"])})
    links += [(10, 0, 12, "pixels", "IMAGE"), (4, 2, 12, "vae", "VAE"), (10, 1, 14, "mask", "MASK"),
              (14, 0, 15, "mask", "MASK"), (15, 0, 12, "mask", "MASK"),
              (4, 0, 3, "model", "MODEL"), (6, 0, 3, "positive", "CONDITIONING"),
              (7, 0, 3, "negative", "CONDITIONING"), (12, 0, 3, "latent_image", "LATENT"),
              (3, 0, 8, "samples", "LATENT"), (4, 2, 8, "vae", "VAE"), (8, 0, 9, "images", "IMAGE")]
    return nodes, links


def test_inpaint_from_a_stale_file_fills_the_since_added_input(base, tmp_path):
    stale = ui_workflow(*inpaint_nodes([]))  # saved before VAEEncodeForInpaint had grow_mask_by
    files, err = run_workflow(base, tmp_path, stale)
    assert "warning: node 12 (VAEEncodeForInpaint): input 'grow_mask_by' is missing" in err
    assert "using its default 6" in err
    with Image.open(files[0]) as png:
        assert png.size == (64, 48)
        ran = json.loads(png.text["prompt"])
        assert ran["12"]["inputs"]["grow_mask_by"] == 6
        assert json.loads(png.text["workflow"]) == stale  # the file itself is embedded unchanged
    # the same stale node in an API prompt: filled and run the same way
    del ran["12"]["inputs"]["grow_mask_by"]
    ran["9"]["inputs"]["filename_prefix"] = "inpaint_api"
    (tmp_path / "api.json").write_text(json.dumps(ran))
    code, out, err = invoke(tmp_path / "api.json", "--base-directory", base)
    assert code == 0, err
    assert "input 'grow_mask_by' is missing" in err
    first, second = files[0], Path(out.split()[0])
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))
