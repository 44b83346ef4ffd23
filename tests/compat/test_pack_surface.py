"""Packs written like real ComfyUI packs (V1 and V3) load from custom_nodes/ and run on a tiny
checkpoint through ComfyUI's names: nodes.common_ksampler, comfy.sd/sample, clip.tokenize,
attention patches, vae.decode, PromptServer routes; each result is compared with our own nodes."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest
import torch

from app.bootstrap import create_runtime
from app.settings import Settings
from diffusion.checkpoint.tiny import write_tiny_checkpoint
from engine.events import RecordingListener

V1_PACK = '''
import torch
from aiohttp import web

import comfy.sample
import comfy.samplers
import comfy.sd
import folder_paths
import latent_preview
import nodes
from comfy.comfy_types.node_typing import IO
from comfy_extras.nodes_custom_sampler import SamplerCustom
from nodes import MAX_RESOLUTION, CLIPTextEncode, VAEDecode, common_ksampler
from server import PromptServer

SEEN = {"attn1": 0}


@PromptServer.instance.routes.get("/surface_pack/info")
async def info(request):
    return web.json_response({"nodes": len(nodes.NODE_CLASS_MAPPINGS), "core": "KSampler" in nodes.NODE_CLASS_MAPPINGS})


class PackKSampler:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "seed": ("INT", {"default": 0}),
                             "sampler_name": (comfy.samplers.KSampler.SAMPLERS,),
                             "scheduler": (comfy.samplers.KSampler.SCHEDULERS + ["pack_only"],),
                             "positive": ("CONDITIONING",), "negative": ("CONDITIONING",),
                             "latent_image": ("LATENT",)}}
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "pack"

    def sample(self, model, seed, sampler_name, scheduler, positive, negative, latent_image):
        return common_ksampler(model, seed, 2, 5.0, sampler_name, scheduler, positive, negative, latent_image)


class PackLowLevelSampler(PackKSampler):
    def sample(self, model, seed, sampler_name, scheduler, positive, negative, latent_image):
        latent = latent_image["samples"]
        noise = comfy.sample.prepare_noise(latent, seed)
        callback = latent_preview.prepare_callback(model, 2)
        samples = comfy.sample.sample(model, noise, 2, 5.0, sampler_name, scheduler, positive, negative,
                                      latent, callback=callback, seed=seed)
        return ({**latent_image, "samples": samples},)


class PackEncode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": (IO.CLIP,), "text": (IO.STRING, {"multiline": True})}}
    RETURN_TYPES = (IO.CONDITIONING,)
    FUNCTION = "encode"

    def encode(self, clip, text):
        assert isinstance(clip, comfy.sd.CLIP)
        tokens = clip.tokenize(text)
        cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
        return ([[cond, {"pooled_output": pooled}]],)


class PackAttentionPatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "scale": ("FLOAT", {"default": 0.5})}}
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"

    def patch(self, model, scale):
        patched = model.clone()

        def attn1_patch(q, k, v, extra_options):
            SEEN["attn1"] += 1
            return q, k, v * scale

        patched.set_model_attn1_patch(attn1_patch)
        return (patched,)


class PackDecode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE",), "samples": ("LATENT",)}}
    RETURN_TYPES = ("IMAGE", "INT")
    OUTPUT_IS_LIST = (False,)  # shorter than RETURN_TYPES, as ComfyUI accepts
    FUNCTION = "decode"

    def decode(self, vae, samples):
        assert isinstance(vae, comfy.sd.VAE)
        return (vae.decode(samples["samples"]), MAX_RESOLUTION)


class InfoOnly:  # no FUNCTION: ComfyUI skips such classes
    RETURN_TYPES = ()


NODE_CLASS_MAPPINGS = {"PackKSampler": PackKSampler, "PackLowLevelSampler": PackLowLevelSampler,
                       "PackEncode": PackEncode, "PackAttentionPatch": PackAttentionPatch,
                       "PackDecode": PackDecode, "InfoOnly": InfoOnly,
                       "PackSamplerCustom": SamplerCustom}
'''

V3_PACK = '''
from comfy_api.latest import ComfyExtension, io, ui


class ScaleLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="V3ScaleLatent", display_name="Scale latent (V3)", category="pack",
                         inputs=[io.Latent.Input("samples"), io.Float.Input("factor", default=2.0, min=0.0, max=10.0),
                                 io.Combo.Input("mode", options=["multiply", "divide"])],
                         outputs=[io.Latent.Output(display_name="scaled")], hidden=[io.Hidden.unique_id])

    @classmethod
    async def execute(cls, samples, factor, mode):
        value = samples["samples"] * factor if mode == "multiply" else samples["samples"] / factor
        return io.NodeOutput({**samples, "samples": value}, ui=ui.PreviewText(f"node {cls.hidden.unique_id}"))


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [ScaleLatent]


async def comfy_entrypoint():
    return Extension()
'''

_ids = itertools.count()


def write_pack(custom_nodes: Path, name: str, source: str) -> None:
    (custom_nodes / name).mkdir(parents=True)
    (custom_nodes / name / "__init__.py").write_text(textwrap.dedent(source))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    base = tmp_path_factory.mktemp("packs")
    write_tiny_checkpoint(base / "models" / "checkpoints" / "tiny.safetensors", "sd1")
    write_pack(base / "custom_nodes", "surface_pack", V1_PACK)
    write_pack(base / "custom_nodes", "v3_pack", V3_PACK)
    return create_runtime(Settings(base_directory=base, cache_ram_gb=0.5))


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def run(runtime, prompt):
    listener = RecordingListener()
    outcome = runtime.executor.execute(prompt, f"surface-{next(_ids)}", listener)
    assert outcome.status == "success", outcome.error
    return outcome, listener


def base_graph(encode="CLIPTextEncode"):
    return {"ckpt": node("CheckpointLoaderSimple", ckpt_name="tiny.safetensors"),
            "pos": node(encode, clip=["ckpt", 1], text="a red fox"),
            "neg": node(encode, clip=["ckpt", 1], text=""),
            "empty": node("EmptyLatentImage", width=64, height=64, batch_size=1)}


def sampled(sampler_node, model=("ckpt", 0), encode="CLIPTextEncode", **extra):
    graph = base_graph(encode)
    inputs = dict(model=list(model), seed=7, sampler_name="euler", scheduler="normal",
                  positive=["pos", 0], negative=["neg", 0], latent_image=["empty", 0])
    if sampler_node == "KSampler":
        inputs.update(steps=2, cfg=5.0, denoise=1.0)
    graph["sample"] = node(sampler_node, **inputs)
    graph.update(extra)
    return graph


def latent_of(runtime, graph):
    graph = dict(graph)
    graph["save"] = node("SaveLatent", samples=["sample", 0], filename_prefix=f"latents/t{next(_ids)}")
    run(runtime, graph)
    from safetensors.torch import load_file
    saved = sorted((runtime.paths.output_directory / "latents").glob("*.latent"), key=lambda p: p.stat().st_mtime)
    return load_file(str(saved[-1]))["latent_tensor"]


def test_both_packs_load_completely(runtime):
    problems = [p for p in runtime.registry.problems if p.source.startswith("custom_nodes/")]
    assert not problems, [p.message for p in problems]
    assert sorted(runtime.custom_packs["surface_pack"]["nodes"]) == sorted(
        ["PackKSampler", "PackLowLevelSampler", "PackEncode", "PackAttentionPatch", "PackDecode",
         "PackSamplerCustom"])  # InfoOnly is skipped, as ComfyUI does
    assert runtime.custom_packs["v3_pack"]["nodes"] == ["V3ScaleLatent"]
    info = runtime.registry.object_info()
    assert "pack_only" in info["PackKSampler"]["input"]["required"]["scheduler"][0]
    assert info["V3ScaleLatent"]["display_name"] == "Scale latent (V3)"
    assert info["V3ScaleLatent"]["input"]["required"]["mode"][0] == ["multiply", "divide"]
    assert info["PackDecode"]["output_is_list"] == [False, False]


def test_pack_samplers_match_our_ksampler(runtime):
    ours = latent_of(runtime, sampled("KSampler"))
    assert torch.equal(latent_of(runtime, sampled("PackKSampler")), ours)  # nodes.common_ksampler
    assert torch.equal(latent_of(runtime, sampled("PackLowLevelSampler")), ours)  # comfy.sample.sample
    assert torch.equal(latent_of(runtime, sampled("KSampler", encode="PackEncode")), ours)  # clip.tokenize


def test_attention_patch_through_model_patcher_changes_the_result(runtime):
    import sys
    pack = next(m for name, m in sys.modules.items() if name.endswith("_surface_pack"))
    before = pack.SEEN["attn1"]
    plain = latent_of(runtime, sampled("KSampler"))
    graph = sampled("KSampler", model=("patch", 0),
                    patch=node("PackAttentionPatch", model=["ckpt", 0], scale=0.25))
    patched = latent_of(runtime, graph)
    assert pack.SEEN["attn1"] > before
    assert not torch.allclose(patched, plain)
    assert torch.equal(latent_of(runtime, sampled("KSampler")), plain)  # the loader's MODEL is untouched


def test_vae_decode_and_v3_node_run(runtime):
    graph = sampled("KSampler")
    graph["scaled"] = node("V3ScaleLatent", samples=["sample", 0], factor=2.0, mode="multiply")
    graph["ours"] = node("VAEDecode", vae=["ckpt", 2], samples=["scaled", 0])
    graph["pack"] = node("PackDecode", vae=["ckpt", 2], samples=["scaled", 0])
    graph["a"] = node("SaveImage", images=["ours", 0], filename_prefix="ours")
    graph["b"] = node("SaveImage", images=["pack", 0], filename_prefix="pack")
    _, events = run(runtime, graph)
    executed = {e["node"]: e["output"] for e in events.named("executed")}
    assert executed["scaled"] == {"text": ["node scaled"]}
    from PIL import Image
    import numpy as np
    out = runtime.paths.output_directory
    with Image.open(out / executed["a"]["images"][0]["filename"]) as a, \
            Image.open(out / executed["b"]["images"][0]["filename"]) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
