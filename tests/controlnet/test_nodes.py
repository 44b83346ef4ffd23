"""ControlNet and preprocessor nodes: ComfyUI inputs, copy-on-write values, caching, preprocessing."""

from __future__ import annotations

import pytest
import torch

from diffusion.controlnet import load_controlnet_state_dict, preprocess
from diffusion.controlnet.tiny import tiny_controlnet_state_dict
from diffusion.memory import ModelManager
from nodes.controlnet import ControlNetApplyAdvanced
from tests.support.engine_fixtures import make_runtime, node, run
from tools.make_tiny_checkpoint import make_tiny_checkpoint
from tools.make_tiny_controlnet import make_tiny_controlnet


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    base = tmp_path_factory.mktemp("cn-nodes")
    make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / "tiny.safetensors")
    make_tiny_controlnet("sd1", base / "models" / "controlnet" / "cn.safetensors")
    return make_runtime(base, cpu=True)


def prompt(strength: float) -> dict:
    return {
        "ckpt": node("CheckpointLoaderSimple", ckpt_name="tiny.safetensors"),
        "pos": node("CLIPTextEncode", text="a box", clip=["ckpt", 1]),
        "neg": node("CLIPTextEncode", text="", clip=["ckpt", 1]),
        "img": node("EmptyImage", width=64, height=64, batch_size=1, color=0x808080),
        "cn": node("ControlNetLoader", control_net_name="cn.safetensors"),
        "apply": node("ControlNetApplyAdvanced", positive=["pos", 0], negative=["neg", 0], control_net=["cn", 0],
                      image=["img", 0], strength=strength, start_percent=0.0, end_percent=1.0),
        "latent": node("EmptyLatentImage", width=64, height=64, batch_size=1),
        "sample": node("KSampler", model=["ckpt", 0], seed=1, steps=1, cfg=3.0, sampler_name="euler",
                       scheduler="normal", positive=["apply", 0], negative=["apply", 1], latent_image=["latent", 0],
                       denoise=1.0),
        "out": node("PreviewImage", images=["decode", 0]),
        "decode": node("VAEDecode", samples=["sample", 0], vae=["ckpt", 2]),
    }


def test_changing_the_strength_reruns_only_the_apply_node_and_what_follows(runtime):
    first, _ = run(runtime, prompt(0.5))
    assert first.status == "success", first.error
    second, _ = run(runtime, prompt(0.7))
    ran = {n for n, r in second.run_report.items() if r["state"] == "ran"}
    assert ran == {"apply", "sample", "decode", "out"}


def test_the_apply_node_never_mutates_its_inputs_and_shares_one_control_for_both():
    net = load_controlnet_state_dict(tiny_controlnet_state_dict("sd1", "ldm"), ModelManager("cpu"))
    positive = [[torch.zeros(1, 77, 32), {"strength": 1.0}]]
    negative = [[torch.ones(1, 77, 32), {}]]
    image = torch.rand(1, 64, 64, 3)
    new_pos, new_neg = ControlNetApplyAdvanced().apply_controlnet(positive, negative, net, image, 0.6, 0.1, 0.9)
    assert positive == [[positive[0][0], {"strength": 1.0}]] and negative[0][1] == {}
    control = new_pos[0][1]["control"]
    assert control is new_neg[0][1]["control"] and control is not net
    assert control.strength == 0.6 and control.timestep_percent_range == (0.1, 0.9)
    assert torch.equal(control.cond_hint_original, image.movedim(-1, 1))
    assert net.cond_hint_original is None  # the loader's value is untouched
    assert ControlNetApplyAdvanced().apply_controlnet(positive, negative, net, image, 0.0, 0.0, 1.0) == (
        positive, negative)


def test_registered_with_comfyui_names_and_inputs(runtime):
    info = runtime.registry.object_info()
    advanced = info["ControlNetApplyAdvanced"]
    assert advanced["input_order"]["required"] == ["positive", "negative", "control_net", "image", "strength",
                                                   "start_percent", "end_percent"]
    assert advanced["input"]["optional"]["vae"][0] == "VAE"
    assert advanced["output_name"] == ["positive", "negative"] and advanced["display_name"] == "Apply ControlNet"
    assert info["ControlNetLoader"]["input"]["required"]["control_net_name"][0] == ["cn.safetensors"]
    assert info["Canny"]["category"] == "image/preprocessors"
    assert info["ControlHint"]["category"] == "conditioning/controlnet"
    assert info["DiffControlNetLoader"]["input_order"]["required"] == ["model", "control_net_name"]


def test_canny_marks_the_outline_of_a_box():
    image = torch.zeros(1, 32, 32, 3)
    image[:, 8:24, 8:24] = 1.0
    edges = preprocess.canny(image, 0.4, 0.8)
    assert edges.shape == (1, 32, 32, 3) and set(edges.unique().tolist()) == {0.0, 1.0}
    assert edges[0, 16, 16, 0] == 0 and edges[0, 2, 2, 0] == 0  # inside and outside are flat
    assert edges[0, 7:10, 16, 0].max() == 1 and edges[0, 16, 7:10, 0].max() == 1  # the borders are edges
    assert preprocess.canny(image, 0.99, 0.99)[0, 16, 16].sum() == 0


def test_scribble_lineart_and_depth_preprocessors():
    page = torch.full((1, 16, 16, 3), 0.9)
    page[:, 4:6, :] = 0.1  # a dark stroke
    lines = preprocess.scribble(page, 0.5, invert=True)
    assert lines[0, 5, 3].tolist() == [1.0, 1.0, 1.0] and lines[0, 10, 3].sum() == 0
    art = preprocess.lineart(page, 7, 0.05)
    assert art[0, 5, 8, 0] == 1 and art[0, 12, 8, 0] == 0
    depth = preprocess.grayscale_depth(page, invert=False, normalize=True)
    assert depth.min() == 0 and depth.max() == 1 and depth.shape == (1, 16, 16, 3)
    assert preprocess.grayscale_depth(page, invert=True, normalize=False)[0, 5, 0, 0] == pytest.approx(1 - 26 / 255)
