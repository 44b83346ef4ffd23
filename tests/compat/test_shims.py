"""The ComfyUI module adapters one by one: delegation, safety and ComfyUI's call shapes."""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from safetensors.torch import save_file

from engine.errors import InterruptedByUser, PathEscapeError
from engine.interrupt import InterruptFlag
from engine.loader import enable_comfyui_compat
from engine.paths import FolderPaths
from engine.runtime import NodeContext, Services, node_context, using_services


@pytest.fixture(scope="module")
def shims():
    enable_comfyui_compat()
    names = ("folder_paths", "comfy.utils", "comfy.model_management", "comfy.cli_args", "node_helpers",
             "comfy_execution.graph_utils", "comfy.samplers")
    return {name.split(".")[-1]: importlib.import_module(name) for name in names}


@pytest.fixture
def services(tmp_path):
    paths = FolderPaths(tmp_path)
    paths.ensure_directories()
    value = Services(paths=paths, settings={"preview_method": "latent2rgb", "disable_metadata": True})
    with using_services(value):
        yield value


def in_node(services, interrupt=None, progress=None):
    return node_context(NodeContext("p", "7", services, interrupt,
                                    (lambda v, t, pv: progress.append((v, t, pv))) if progress is not None else None))


# ---- folder_paths -------------------------------------------------------------------------
def test_folder_paths_delegates_to_folder_paths_of_the_runtime(shims, services, tmp_path):
    fp = shims["folder_paths"]
    base = tmp_path.resolve()
    (base / "models" / "loras" / "sub").mkdir(parents=True)
    (base / "models" / "loras" / "sub" / "a.safetensors").write_bytes(b"x")
    (base / "models" / "loras" / "notes.txt").write_text("ignored")
    assert fp.get_filename_list("loras") == ["sub/a.safetensors"]
    assert fp.get_full_path("loras", "sub/a.safetensors") == str(base / "models" / "loras" / "sub" / "a.safetensors")
    assert fp.get_full_path("loras", "missing.safetensors") is None
    with pytest.raises(FileNotFoundError):
        fp.get_full_path_or_raise("loras", "missing.safetensors")
    assert fp.get_folder_paths("unet") == [str(base / "models" / "unet"), str(base / "models" / "diffusion_models")]
    assert fp.get_input_directory() == str(base / "input") == fp.input_directory
    assert fp.get_output_directory() == str(base / "output")
    assert fp.get_temp_directory() == str(base / "temp")
    assert fp.get_directory_by_type("temp") == str(base / "temp") and fp.get_directory_by_type("x") is None
    assert fp.models_dir == str(base / "models") and fp.base_path == str(base)
    assert ".safetensors" in fp.supported_pt_extensions
    with pytest.raises(AttributeError, match="compatibility layer"):
        fp.does_not_exist  # noqa: B018


def test_folder_names_and_paths_for_known_kinds(shims, services, tmp_path):
    fp = shims["folder_paths"]
    view = fp.folder_names_and_paths
    dirs, extensions = view["controlnet"]
    assert dirs == [str(tmp_path.resolve() / "models" / d) for d in ("controlnet", "t2i_adapter")]
    assert ".pth" in extensions and "checkpoints" in view and "custom_nodes" in view
    extra = tmp_path / "elsewhere"
    extra.mkdir()
    (extra / "e.pt").write_bytes(b"x")
    fp.add_model_folder_path("embeddings", str(extra))
    assert fp.get_filename_list("embeddings") == ["e.pt"]
    assert str(extra.resolve()) in fp.folder_names_and_paths["embeddings"][0]
    more = tmp_path / "more_loras"
    more.mkdir()
    (more / "l.safetensors").write_bytes(b"x")
    current, exts = view["loras"]
    view["loras"] = (current + [str(more)], exts)  # the usual "append a directory" idiom
    assert fp.get_filename_list("loras") == ["l.safetensors"]
    with pytest.raises(TypeError):
        del view["loras"]
    with pytest.raises(TypeError):
        view["custom_nodes"] = ([str(tmp_path)], set())


def test_pack_defined_folder_kinds_belong_to_their_runtime(shims, services, tmp_path):
    fp = shims["folder_paths"]
    ipadapter = Path(fp.models_dir) / "ipadapter"
    (ipadapter / "sd15").mkdir(parents=True)
    (ipadapter / "sd15" / "a.safetensors").write_bytes(b"x")
    (ipadapter / "readme.txt").write_text("skip")
    # the idiom of popular packs
    if "ipadapter" not in fp.folder_names_and_paths:
        current = [str(ipadapter)]
    else:
        current, _ = fp.folder_names_and_paths["ipadapter"]
    fp.folder_names_and_paths["ipadapter"] = (current, fp.supported_pt_extensions)
    assert "ipadapter" in fp.folder_names_and_paths
    assert fp.get_filename_list("ipadapter") == ["sd15/a.safetensors"]
    assert fp.get_full_path("ipadapter", "sd15/a.safetensors") == str(ipadapter.resolve() / "sd15" / "a.safetensors")
    assert fp.get_full_path("ipadapter", "missing.safetensors") is None
    with pytest.raises(PathEscapeError):
        fp.get_full_path("ipadapter", "../../secret")
    fp.add_model_folder_path("insightface", str(tmp_path / "faces"))  # any extension, as ComfyUI
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "model.onnx").write_bytes(b"x")
    assert fp.get_filename_list("insightface") == ["model.onnx"]
    fp.folder_names_and_paths["insightface"][0].append(str(ipadapter))  # in-place append works too
    assert "sd15/a.safetensors" in fp.get_filename_list("insightface")
    with pytest.raises(KeyError, match="unknown model folder"):
        fp.get_filename_list("never_registered")
    other = FolderPaths(tmp_path / "other")
    with using_services(Services(paths=other)):
        assert "ipadapter" not in fp.folder_names_and_paths  # another runtime, another table
        with pytest.raises(KeyError):
            fp.get_filename_list("ipadapter")


def test_get_save_image_path_matches_comfyui_tuple(shims, services, tmp_path):
    fp = shims["folder_paths"]
    output = fp.get_output_directory()
    folder, name, counter, subfolder, prefix = fp.get_save_image_path("runs/img_%width%x%height%", output, 64, 32)
    assert (Path(folder), name, counter, subfolder, prefix) == (
        tmp_path.resolve() / "output" / "runs", "img_64x32", 1, "runs", "runs/img_64x32")
    (Path(folder) / "img_64x32_00007_.png").write_bytes(b"x")
    assert fp.get_save_image_path("runs/img_%width%x%height%", output, 64, 32)[2] == 8
    for bad in ("../up", "/abs/name", "a/../../up"):
        with pytest.raises(PathEscapeError):
            fp.get_save_image_path(bad, output)


def test_annotated_names(shims, services, tmp_path):
    fp = shims["folder_paths"]
    base = tmp_path.resolve()
    assert fp.annotated_filepath("a.png [output]") == ("a.png", str(base / "output"))
    assert fp.annotated_filepath("a.png") == ("a.png", None)
    assert fp.get_annotated_filepath("sub/a.png") == str(base / "input" / "sub" / "a.png")
    assert fp.get_annotated_filepath("a.png", str(base / "temp")) == str(base / "temp" / "a.png")
    (base / "output" / "a.png").write_bytes(b"x")
    assert fp.exists_annotated_filepath("a.png [output]") and not fp.exists_annotated_filepath("a.png")
    outside = base.parent / "outside"
    outside.mkdir(exist_ok=True)
    (base / "input" / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathEscapeError):
        fp.get_annotated_filepath("link/x.png")  # symlinks leaving the folder are refused too


# ---- comfy.utils --------------------------------------------------------------------------
def test_progress_bar_reports_through_the_running_node(shims, services):
    utils = shims["utils"]
    progress: list = []
    with in_node(services, InterruptFlag(), progress):
        bar = utils.ProgressBar(4)
        bar.update(1)
        bar.update(2)
        bar.update_absolute(4, 4, ("PNG", Image.new("RGB", (40, 20), (255, 0, 0)), 10))
        bar.update_absolute(2, 8, ("JPEG", b"\xff\xd8raw"))
    assert [(v, t) for v, t, _ in progress] == [(1, 4), (3, 4), (4, 4), (2, 8)]
    png = progress[2][2]
    assert png[0] == "PNG" and Image.open(io.BytesIO(png[1])).size == (10, 5)
    assert progress[3][2] == ("JPEG", b"\xff\xd8raw")
    utils.ProgressBar(3).update(1)  # outside a node: nowhere to report, no error


def test_progress_bar_raises_the_interrupt_packs_catch(shims, services):
    utils, mm = shims["utils"], shims["model_management"]
    flag = InterruptFlag()
    assert mm.InterruptProcessingException is InterruptedByUser
    with in_node(services, flag, []):
        assert not mm.processing_interrupted()
        mm.throw_exception_if_processing_interrupted()
        flag.set()
        assert mm.processing_interrupted()
        with pytest.raises(mm.InterruptProcessingException):
            utils.ProgressBar(2).update(1)
        with pytest.raises(InterruptedByUser):
            mm.throw_exception_if_processing_interrupted()
        mm.interrupt_current_processing(False)
        assert not flag.is_set()
        mm.interrupt_current_processing()
        assert flag.is_set()
    assert not mm.processing_interrupted()  # outside a node nothing is interrupted
    mm.throw_exception_if_processing_interrupted()


def test_common_upscale(shims):
    utils = shims["utils"]
    from diffusion.latent_ops import resize_samples

    generator = torch.Generator().manual_seed(0)
    samples = torch.rand(2, 3, 12, 8, generator=generator)
    for method in ("nearest-exact", "bilinear", "area", "bicubic", "bislerp"):
        for crop in ("disabled", "center"):
            assert torch.equal(utils.common_upscale(samples, 6, 6, method, crop),
                               resize_samples(samples, 6, 6, method, crop))
    lanczos = utils.common_upscale(samples, 4, 6, "lanczos", "disabled")
    expected = np.asarray(Image.fromarray((samples[1].movedim(0, -1).numpy() * 255).astype(np.uint8))
                          .resize((4, 6), Image.LANCZOS), dtype=np.float32) / 255.0
    assert lanczos.shape == (2, 3, 6, 4)
    assert np.allclose(lanczos[1].movedim(0, -1).numpy(), expected)
    assert utils.common_upscale(samples, 8, 8, "lanczos", "center").shape == (2, 3, 8, 8)
    with pytest.raises(ValueError):
        utils.common_upscale(samples, 4, 4, "nearest", "disabled")


def test_small_tensor_helpers(shims):
    utils = shims["utils"]
    t = torch.arange(3)
    assert utils.repeat_to_batch_size(t, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert utils.repeat_to_batch_size(t, 2).tolist() == [0, 1]
    sd = {"a.x": 1, "a.y": 2, "b.z": 3}
    assert utils.state_dict_prefix_replace(sd, {"a.": "c."}) == {"c.x": 1, "c.y": 2, "b.z": 3}
    assert utils.state_dict_prefix_replace(sd, {"a.": "c."}, filter_keys=True) == {"c.x": 1, "c.y": 2}
    assert sd == {"a.x": 1, "a.y": 2, "b.z": 3}


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_torch_file_never_unpickles_code(shims, tmp_path):
    utils = shims["utils"]
    from diffusion.checkpoint.errors import CheckpointError

    weights = {"w": torch.ones(2, 2), "b": torch.zeros(3)}
    save_file(weights, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    loaded, metadata = utils.load_torch_file(str(tmp_path / "m.safetensors"), return_metadata=True)
    assert set(loaded) == {"w", "b"} and torch.equal(loaded["w"], weights["w"]) and metadata == {"k": "v"}
    torch.save({"state_dict": weights}, tmp_path / "m.ckpt")
    assert torch.equal(utils.load_torch_file(str(tmp_path / "m.ckpt"))["b"], weights["b"])
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"x": _Evil()}, handle)
    with pytest.raises(CheckpointError, match="refused"):
        utils.load_torch_file(str(tmp_path / "evil.pt"), safe_load=False)


# ---- the rest -----------------------------------------------------------------------------
def test_devices_come_from_the_model_manager(shims, tmp_path):
    mm = shims["model_management"]

    class Manager:
        device = torch.device("meta")
        offload_device = torch.device("cpu")

        def unet_dtype(self):
            return torch.float16

        def vae_dtype(self):
            return torch.bfloat16

        def text_encoder_dtype(self):
            return torch.float16

        def free_memory_bytes(self):
            return 123

    with using_services(Services(paths=FolderPaths(tmp_path), model_manager=Manager())):
        assert mm.get_torch_device() == torch.device("meta") and not mm.cpu_mode()
        assert mm.intermediate_device() == torch.device("cpu") == mm.unet_offload_device()
        assert (mm.unet_dtype(), mm.vae_dtype(), mm.text_encoder_dtype()) == (torch.float16, torch.bfloat16,
                                                                              torch.float16)
        assert mm.get_free_memory() == 123 and mm.get_free_memory(None, True) == (123, 123)
        assert mm.should_use_fp16() and not mm.should_use_bf16()
        assert mm.text_encoder_device() == mm.vae_device() == torch.device("meta")
        assert mm.get_autocast_device(torch.device("meta")) == "meta"
    with using_services(Services(paths=FolderPaths(tmp_path))):
        assert mm.get_torch_device() == torch.device("cpu") and mm.unet_dtype() == torch.float32
    mm.soft_empty_cache()


def test_cli_args_is_a_read_only_view_of_runtime_flags(shims, services):
    cli_args = shims["cli_args"]
    from comfy.cli_args import LatentPreviewMethod, args

    assert args.disable_metadata is True and args.preview_method is LatentPreviewMethod.Latent2RGB
    with pytest.raises(AttributeError, match="read-only"):
        args.disable_metadata = False
    with pytest.raises(AttributeError, match="listen"):
        args.listen  # noqa: B018
    assert cli_args.args.disable_metadata is True


def test_node_helpers(shims):
    helpers = shims["node_helpers"]
    cond = [[torch.zeros(1, 2, 3), {"strength": 1.0, "list": [1]}]]
    out = helpers.conditioning_set_values(cond, {"strength": 0.5})
    assert out[0][1]["strength"] == 0.5 and cond[0][1]["strength"] == 1.0
    appended = helpers.conditioning_set_values(cond, {"list": [2]}, append=True)
    assert appended[0][1]["list"] == [1, 2] and cond[0][1]["list"] == [1]
    attempts = []

    def flaky(arg):
        attempts.append(ImageFile.LOAD_TRUNCATED_IMAGES)
        if len(attempts) == 1:
            raise OSError("image file is truncated")
        return arg

    assert helpers.pillow(flaky, "ok") == "ok"
    assert attempts == [False, True] and ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_import_comfy_alone_reaches_the_submodules(shims):
    import comfy

    assert comfy.model_management is shims["model_management"] and comfy.utils is shims["utils"]


def test_execution_blocker_and_sampler_names_are_ours(shims):
    from diffusion.sampling import SAMPLER_NAMES, SCHEDULER_NAMES
    from engine.blocker import ExecutionBlocker

    assert shims["graph_utils"].ExecutionBlocker is ExecutionBlocker
    assert shims["samplers"].KSampler.SAMPLERS == list(SAMPLER_NAMES)
    assert shims["samplers"].KSampler.SCHEDULERS == list(SCHEDULER_NAMES)
    assert isinstance(shims["samplers"].KSampler.SCHEDULERS, list)  # packs extend it with `+ [...]`
    from diffusion.sampling.guiders import CFGGuider

    assert shims["samplers"].CFGGuider is CFGGuider
    sampler = shims["samplers"].ksampler("euler_ancestral", {"eta": 0.5})
    assert sampler.name == "euler_ancestral" and sampler.options == {"eta": 0.5}
    assert shims["samplers"].sampler_object("dpmpp_2m").name == "dpmpp_2m"


def test_tiled_scale_blends_tiles_into_the_whole_result(shims, services):
    utils = shims["utils"]
    generator = torch.Generator().manual_seed(1)
    samples = torch.rand(2, 3, 21, 30, generator=generator)

    def upscale2(tile):
        return tile.repeat_interleave(2, -1).repeat_interleave(2, -2)

    progress: list = []
    steps = utils.get_tiled_scale_steps(30, 21, 12, 10, 4)
    with in_node(services, InterruptFlag(), progress):
        bar = utils.ProgressBar(steps)
        tiled = utils.tiled_scale(samples, upscale2, tile_x=12, tile_y=10, overlap=4, upscale_amount=2, pbar=bar)
    assert tiled.shape == (2, 3, 42, 60)
    assert torch.allclose(tiled, upscale2(samples), atol=1e-6)
    assert progress[-1][:2] == (steps, steps) and len(progress) == 2 * steps  # two images
    single = utils.tiled_scale(samples[:1], upscale2, tile_x=64, tile_y=64, overlap=8, upscale_amount=2)
    assert torch.allclose(single, upscale2(samples[:1]), atol=1e-6)  # one tile larger than the image
    with pytest.raises(ValueError):
        utils.tiled_scale(samples, upscale2, tile_x=8, tile_y=8, overlap=8)
