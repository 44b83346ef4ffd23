"""Loader and latent nodes through the engine's services, as a running graph would call them."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine.errors import PathEscapeError
from engine.registry import NodeRegistry
from nodes import latent as latent_nodes
from nodes import loaders as loader_nodes


def test_node_modules_register_with_the_engine():
    registry = NodeRegistry()
    for module in (latent_nodes, loader_nodes):
        registry.register_mappings(
            module.NODE_CLASS_MAPPINGS, module.NODE_DISPLAY_NAME_MAPPINGS, module.__name__
        )
    assert not registry.problems
    info = registry.object_info_for("EmptyLatentImage")
    assert info["input"]["required"]["width"][1]["default"] == 512
    assert info["category"] == "latent"
    assert registry.object_info_for("CheckpointLoaderSimple")["output"] == ["MODEL", "CLIP", "VAE"]


def test_checkpoint_loader_decode_and_encode_on_a_tiny_file(services, tiny_checkpoint):
    shutil.copy(tiny_checkpoint("sd1"), services.paths.models_directory / "checkpoints" / "tiny.safetensors")
    assert "tiny.safetensors" in loader_nodes.CheckpointLoaderSimple.INPUT_TYPES()["required"]["ckpt_name"][0]
    model, clip, vae = loader_nodes.CheckpointLoaderSimple().load_checkpoint("tiny.safetensors")
    assert model.family == "sd1" and clip is not None
    (latent,) = latent_nodes.EmptyLatent().generate(64, 48, 2, model=model)
    assert latent["samples"].shape == (2, 4, 6, 8)
    (image,) = latent_nodes.VAEDecode().decode(vae, latent)
    assert image.shape == (2, 48, 64, 3) and 0 <= image.min() and image.max() <= 1
    (encoded,) = latent_nodes.VAEEncode().encode(vae, torch.cat([image, torch.ones(2, 48, 64, 1)], -1))
    assert encoded["samples"].shape == (2, 4, 6, 8)
    (tiled,) = latent_nodes.VAEDecodeTiled().decode(vae, latent, tile_size=64, overlap=32)
    assert tiled.shape == image.shape
    with pytest.raises(PathEscapeError):
        loader_nodes.CheckpointLoaderSimple().load_checkpoint("../escape.safetensors")
    with pytest.raises(FileNotFoundError):
        loader_nodes.CheckpointLoaderSimple().load_checkpoint("missing.safetensors")


def test_vae_and_unet_loaders_read_component_files(services, tiny_checkpoint):
    from safetensors.torch import save_file

    from diffusion.checkpoint.files import read_state_dict

    state, metadata = read_state_dict(tiny_checkpoint("sdxl", text=False))
    vae_sd = {
        k.removeprefix("first_stage_model."): v
        for k, v in state.items()
        if k.startswith("first_stage_model.")
    }
    save_file(vae_sd, str(services.paths.models_directory / "vae" / "sdxl_vae.safetensors"))
    unet_sd = {
        k.removeprefix("model.diffusion_model."): v
        for k, v in state.items()
        if k.startswith("model.diffusion")
    }
    save_file(
        unet_sd,
        str(services.paths.get_folder_paths("diffusion_models")[0] / "unet.safetensors"),
        metadata=metadata,
    )
    (vae,) = loader_nodes.VAELoader().load_vae("sdxl_vae.safetensors")
    assert all(torch.equal(vae.get_sd()[k], v) for k, v in vae_sd.items())
    (model,) = loader_nodes.UNETLoader().load_unet("unet.safetensors", "default")
    assert model.family == "sdxl" and model.unet_config.adm_in_channels == 64 + 6 * 256


def test_empty_latent_image_shape_and_defaults():
    (latent,) = latent_nodes.EmptyLatentImage().generate(512, 768, 3)
    assert latent["samples"].shape == (3, 4, 96, 64)
    assert latent["samples"].abs().sum() == 0


def test_latent_from_batch_records_batch_index():
    samples = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 4, 2, 2).clone()
    (picked,) = latent_nodes.LatentFromBatch().frombatch({"samples": samples}, batch_index=3, length=4)
    assert picked["samples"][:, 0, 0, 0].tolist() == [3.0, 4.0]
    assert picked["batch_index"] == [3, 4]
    (again,) = latent_nodes.LatentFromBatch().frombatch(picked, batch_index=1, length=1)
    assert again["batch_index"] == [4]
    assert samples.shape == (5, 4, 2, 2)  # input untouched


def test_repeat_latent_batch_continues_batch_indices():
    latent = {"samples": torch.randn(2, 4, 2, 2), "batch_index": [3, 4]}
    (out,) = latent_nodes.RepeatLatentBatch().repeat(latent, 3)
    assert out["samples"].shape == (6, 4, 2, 2)
    assert out["batch_index"] == [3, 4, 5, 6, 7, 8]
    assert torch.equal(out["samples"][4:], latent["samples"])


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"])
def test_latent_upscale_sizes(method):
    latent = {"samples": torch.randn(1, 4, 8, 12)}
    (out,) = latent_nodes.LatentUpscale().upscale(latent, method, 192, 0, "disabled")
    assert out["samples"].shape == (1, 4, 16, 24)
    (by,) = latent_nodes.LatentUpscaleBy().upscale(latent, method, 1.5)
    assert by["samples"].shape == (1, 4, 12, 18)
    (cropped,) = latent_nodes.LatentUpscale().upscale(latent, method, 64, 64, "center")
    assert cropped["samples"].shape == (1, 4, 8, 8)


def test_bislerp_keeps_latent_vector_norms_between_neighbours():
    a, b = torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0, 0.0])
    samples = torch.stack([a, b]).T.reshape(1, 4, 1, 2)
    (out,) = latent_nodes.LatentUpscale().upscale({"samples": samples}, "bislerp", 32, 8, "disabled")
    norms = out["samples"].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_save_latent_then_load_latent_round_trips(services):
    samples = torch.randn(2, 4, 8, 8)
    latent = {"samples": samples}
    result = latent_nodes.SaveLatent().save(
        latent, "latents/test", prompt={"1": {}}, extra_pnginfo={"workflow": {}}
    )
    entry = result["ui"]["latents"][0]
    assert entry == {"filename": "test_00001_.latent", "subfolder": "latents", "type": "output"}
    saved = services.paths.output_directory / "latents" / entry["filename"]
    from safetensors import safe_open

    with safe_open(str(saved), "pt") as handle:
        assert set(handle.keys()) == {"latent_tensor", "latent_format_version_0"}
        assert torch.equal(handle.get_tensor("latent_tensor"), samples)  # raw latents, as ComfyUI
        assert handle.metadata()["prompt"] == '{"1": {}}'
    second = latent_nodes.SaveLatent().save(latent, "latents/test")
    assert second["ui"]["latents"][0]["filename"] == "test_00002_.latent"
    shutil.copy(saved, services.paths.input_directory / "in.latent")
    assert latent_nodes.LoadLatent.INPUT_TYPES()["required"]["latent"][0] == ["in.latent"]
    (loaded,) = latent_nodes.LoadLatent().load("in.latent")
    assert torch.equal(loaded["samples"], samples)
    assert latent_nodes.LoadLatent.VALIDATE_INPUTS("../x.latent") != True
    with pytest.raises(PathEscapeError):
        latent_nodes.SaveLatent().save(latent, "../outside/x")


def test_load_latent_reads_legacy_files_with_comfyuis_factor(services):
    from safetensors.torch import save_file

    scaled = torch.randn(1, 4, 8, 8)
    save_file({"latent_tensor": scaled}, str(services.paths.input_directory / "old.latent"))
    (loaded,) = latent_nodes.LoadLatent().load("old.latent")
    assert torch.equal(loaded["samples"], scaled * (1.0 / 0.18215))  # ComfyUI's LoadLatent arithmetic


def test_deprecated_loader_takes_v_prediction_from_the_yaml(services, tiny_checkpoint):
    shutil.copy(
        tiny_checkpoint("sd2", text=False),
        services.paths.models_directory / "checkpoints" / "sd2.safetensors",
    )
    configs = services.paths.models_directory / "configs"
    (configs / "v2-inference-v.yaml").write_text(
        'model:\n  params:\n    parameterization: "v"\n    linear_start: 0.00085\n'
    )
    (configs / "v2-inference.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    loader = loader_nodes.CheckpointLoader()
    (v_model, _, _) = loader.load_checkpoint("v2-inference-v.yaml", "sd2.safetensors")
    (eps_model, _, _) = loader.load_checkpoint("v2-inference.yaml", "sd2.safetensors")
    assert v_model.sampling_config.prediction == "v_prediction"
    assert eps_model.sampling_config.prediction == "eps"


def test_two_loads_of_one_file_share_the_networks(services, tiny_checkpoint):
    import gc

    shutil.copy(tiny_checkpoint("sd1"), services.paths.models_directory / "checkpoints" / "a.safetensors")
    first = loader_nodes.CheckpointLoaderSimple().load_checkpoint("a.safetensors")
    second = loader_nodes.CheckpointLoaderSimple().load_checkpoint("a.safetensors")
    assert second[0].is_clone(first[0]) and second[0] is not first[0]
    assert second[2] is first[2]
    assert second[0].patches == {} and second[0].sampling_config == first[0].sampling_config
    del first, second
    gc.collect()
    third = loader_nodes.CheckpointLoaderSimple().load_checkpoint("a.safetensors")
    assert third[0].diffusion_model is not None
    assert len([m for m in services.model_manager.loaded_models() if m.name.endswith("(unet)")]) == 1
