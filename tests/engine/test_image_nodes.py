"""Built-in image and primitive nodes, run through the executor like any workflow."""

import json
import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from engine.imagefiles import expand_prefix, save_target, write_new_file
from engine.errors import PathEscapeError
from tests.support.engine_fixtures import make_runtime, node, run


@pytest.fixture
def runtime(tmp_path):
    return make_runtime(tmp_path)


def save_prompt(prefix="ComfyUI", width=4, height=3, color=0xFF0000, batch=1):
    return {"1": node("EmptyImage", width=width, height=height, batch_size=batch, color=color),
            "2": node("SaveImage", images=["1", 0], filename_prefix=prefix)}


def test_save_image_writes_png_with_prompt_and_workflow_chunks(runtime):
    prompt = save_prompt()
    workflow = {"nodes": [{"id": 1}], "links": []}
    outcome, _ = run(runtime, prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    assert outcome.ok
    images = outcome.outputs["2"]["images"]
    assert images == [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]
    path = runtime.paths.output_directory / "ComfyUI_00001_.png"
    with Image.open(path) as saved:
        assert json.loads(saved.text["prompt"]) == prompt
        assert json.loads(saved.text["workflow"]) == workflow
        assert saved.size == (4, 3)
        assert saved.getpixel((0, 0)) == (255, 0, 0)
    assert not [p for p in os.listdir(runtime.paths.output_directory) if p.endswith(".part")]


def test_save_image_never_overwrites_and_counts_up(runtime):
    (runtime.paths.output_directory / "shot_00007_.png").write_bytes(b"existing")
    outcome, _ = run(runtime, save_prompt(prefix="shot", batch=2))
    names = [i["filename"] for i in outcome.outputs["2"]["images"]]
    assert names == ["shot_00008_.png", "shot_00009_.png"]
    assert (runtime.paths.output_directory / "shot_00007_.png").read_bytes() == b"existing"
    again, _ = run(runtime, save_prompt(prefix="shot", batch=2), force=True)
    assert [i["filename"] for i in again.outputs["2"]["images"]] == ["shot_00010_.png", "shot_00011_.png"]


def test_save_image_is_cached_until_forced(runtime):
    run(runtime, save_prompt(prefix="c"))
    second, _ = run(runtime, save_prompt(prefix="c"))
    assert second.run_report["2"]["state"] == "cached"
    assert second.outputs["2"]["images"][0]["filename"] == "c_00001_.png"
    assert len(list(runtime.paths.output_directory.glob("c_*.png"))) == 1


def test_save_image_subfolders_and_tokens(runtime):
    outcome, _ = run(runtime, save_prompt(prefix="runs/%width%x%height%/img"))
    image = outcome.outputs["2"]["images"][0]
    assert image == {"filename": "img_00001_.png", "subfolder": "runs/4x3", "type": "output"}
    assert (runtime.paths.output_directory / "runs/4x3/img_00001_.png").is_file()


@pytest.mark.parametrize("prefix", ["../escape", "a/../../b", "/abs/path", "C:/x", "sub/.."])
def test_save_image_prefix_cannot_escape_the_output_folder(runtime, prefix):
    outcome, _ = run(runtime, save_prompt(prefix=prefix))
    assert outcome.status == "error"
    error = outcome.node_errors["2"]["errors"][0]  # refused at validation, before anything ran
    assert error["type"] == "custom_validation_failed" and "not allowed" in error["details"]
    assert not (runtime.paths.base_directory / "escape").exists()


def test_huge_prefix_is_refused_at_validation_without_touching_the_disk(runtime):
    huge = "x" * (50 * 1024 * 1024)
    outcome, _ = run(runtime, save_prompt(prefix=huge))
    error = outcome.node_errors["2"]["errors"][0]
    assert error["type"] == "custom_validation_failed"
    assert "characters long" in error["details"] and len(error["details"]) < 1000
    assert list(runtime.paths.output_directory.iterdir()) == []


def test_prefix_with_a_name_too_long_for_the_file_system_is_refused(runtime):
    outcome, _ = run(runtime, save_prompt(prefix="runs/" + "é" * 150))
    assert "bytes" in outcome.node_errors["2"]["errors"][0]["details"]


def test_counter_ignores_names_that_only_share_the_prefix(tmp_path):
    for name in ("shot_00004_.png", "shot_00009.latent", "shot_x_00020_.png", "shots_00030_.png", "shot_"):
        (tmp_path / name).write_bytes(b"")
    assert save_target(tmp_path, "shot", 1, 1).counter == 10
    assert save_target(tmp_path, "a.b*c", 1, 1).counter == 1  # regex characters are plain text


def test_linked_prefix_is_still_contained_when_saving(runtime):
    prompt = save_prompt()
    prompt["p"] = node("PrimitiveString", value="../../escape")
    prompt["2"]["inputs"]["filename_prefix"] = ["p", 0]
    outcome, _ = run(runtime, prompt)
    assert outcome.status == "error" and outcome.error["exception_type"] == "engine.errors.PathEscapeError"


def test_disable_metadata(tmp_path):
    runtime = make_runtime(tmp_path, disable_metadata=True)
    outcome, _ = run(runtime, save_prompt())
    with Image.open(runtime.paths.output_directory / outcome.outputs["2"]["images"][0]["filename"]) as saved:
        assert "prompt" not in saved.text


def test_preview_image_goes_to_temp(runtime):
    prompt = {"1": node("EmptyImage", width=2, height=2, batch_size=1, color=0),
              "2": node("PreviewImage", images=["1", 0])}
    outcome, _ = run(runtime, prompt)
    image = outcome.outputs["2"]["images"][0]
    assert image["type"] == "temp" and image["filename"].startswith("ComfyUI_temp_")
    assert (runtime.paths.temp_directory / image["filename"]).is_file()


def test_prefix_tokens():
    import time

    now = time.strptime("2024-03-05 07:08:09", "%Y-%m-%d %H:%M:%S")
    assert expand_prefix("%date:yyyy-MM-dd%_%width%x%height%_%date%_%hour%", 640, 480, now) == \
        "2024-03-05_640x480_2024-03-05_07"


def test_concurrent_writers_never_collide(tmp_path):
    names = []

    def writer():
        target = save_target(tmp_path, "race", 1, 1)
        name, _ = write_new_file(target.directory, lambda c: f"race_{c:05}_.png", target.counter, b"x")
        names.append(name)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8 and len(list(tmp_path.glob("race_*.png"))) == 8


def test_save_target_rejects_escapes(tmp_path):
    with pytest.raises(PathEscapeError):
        save_target(tmp_path, "../x", 1, 1)


def write_rgba(path, alpha):
    pixels = np.zeros((4, 5, 4), dtype=np.uint8)
    pixels[..., 0] = 200
    pixels[..., 3] = alpha
    Image.fromarray(pixels, "RGBA").save(path)


def test_load_image_returns_image_and_mask_from_alpha(runtime):
    alpha = np.full((4, 5), 255, dtype=np.uint8)
    alpha[0, 0] = 0
    write_rgba(runtime.paths.input_directory / "rgba.png", alpha)
    prompt = {"1": node("LoadImage", image="rgba.png"), "2": node("PreviewImage", images=["1", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok
    instance = runtime.executor._instance("1", runtime.registry.get("LoadImage"))
    image, mask = instance.load_image("rgba.png")
    assert image.shape == (1, 4, 5, 3) and image.dtype == torch.float32
    assert torch.allclose(image[0, 0, 0], torch.tensor([200 / 255, 0, 0]))
    assert mask.shape == (1, 4, 5)
    assert mask[0, 0, 0] == 1.0 and mask[0, 1, 1] == 0.0


def test_load_image_without_alpha_gives_comfyui_empty_mask(runtime):
    Image.new("RGB", (6, 4), (0, 255, 0)).save(runtime.paths.input_directory / "rgb.png")
    instance = runtime.registry.get("LoadImage").node_class()
    from engine.runtime import using_services

    with using_services(runtime.services):
        image, mask = instance.load_image("rgb.png")
    assert image.shape == (1, 4, 6, 3) and mask.shape == (1, 64, 64) and not mask.any()


def test_load_image_reruns_when_the_file_changes(runtime):
    path = runtime.paths.input_directory / "changing.png"
    Image.new("RGB", (2, 2), (0, 0, 0)).save(path)
    prompt = {"1": node("LoadImage", image="changing.png"), "2": node("PreviewImage", images=["1", 0])}
    run(runtime, prompt)
    same, _ = run(runtime, prompt)
    assert same.run_report["1"]["state"] == "cached"
    Image.new("RGB", (2, 2), (255, 255, 255)).save(path)
    changed, _ = run(runtime, prompt)
    assert changed.run_report["1"] == {"state": "ran", "reason": "IS_CHANGED changed"}


def test_load_image_lists_input_files_and_refuses_escapes(runtime, tmp_path):
    Image.new("RGB", (2, 2)).save(runtime.paths.input_directory / "a.png")
    assert runtime.registry.object_info_for("LoadImage")["input"]["required"]["image"][0] == ["a.png"]
    (tmp_path / "secret.png").write_bytes(b"x")
    from engine.validation import validate_prompt

    result = validate_prompt({"1": node("LoadImage", image="../secret.png"),
                              "2": node("PreviewImage", images=["1", 0])}, runtime.registry)
    error = result.node_errors["1"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "Invalid image file" in error["details"]
    result = validate_prompt({"1": node("LoadImage", image="missing.png"),
                              "2": node("PreviewImage", images=["1", 0])}, runtime.registry)
    assert not result.ok


def image_pipeline(runtime, *steps):
    prompt = {"1": node("EmptyImage", width=8, height=6, batch_size=1, color=0x336699)}
    last = "1"
    for index, (class_type, inputs) in enumerate(steps, start=2):
        prompt[str(index)] = node(class_type, image=[last, 0], **inputs)
        last = str(index)
    prompt["out"] = node("TestOutput", value=[last, 0])
    outcome, _ = run(runtime, prompt)
    assert outcome.ok, outcome.error
    from tests.support.testing_nodes.basic import CALLS

    return [c[1] for c in CALLS if c[0] == "TestOutput"][-1]


def test_empty_image_color(runtime):
    image = image_pipeline(runtime)
    assert image.shape == (1, 6, 8, 3)
    assert torch.allclose(image[0, 0, 0], torch.tensor([0x33, 0x66, 0x99]) / 255.0)


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])
def test_image_scale_methods(runtime, method):
    image = image_pipeline(runtime, ("ImageScale", {"upscale_method": method, "width": 16, "height": 3,
                                                    "crop": "disabled"}))
    assert image.shape == (1, 3, 16, 3)
    assert torch.allclose(image[0, 1, 5], torch.tensor([0x33, 0x66, 0x99]) / 255.0, atol=1 / 255)


def test_image_scale_keeps_aspect_when_one_side_is_zero(runtime):
    image = image_pipeline(runtime, ("ImageScale", {"upscale_method": "bilinear", "width": 16, "height": 0,
                                                    "crop": "center"}))
    assert image.shape == (1, 12, 16, 3)


def test_image_scale_by_invert_crop(runtime):
    image = image_pipeline(runtime, ("ImageScaleBy", {"upscale_method": "nearest-exact", "scale_by": 0.5}),
                           ("ImageInvert", {}), ("ImageCrop", {"width": 2, "height": 2, "x": 1, "y": 1}))
    assert image.shape == (1, 2, 2, 3)
    assert torch.allclose(image[0, 0, 0], 1 - torch.tensor([0x33, 0x66, 0x99]) / 255.0)


def test_image_batch_resizes_the_second_image(runtime):
    prompt = {"1": node("EmptyImage", width=8, height=8, batch_size=2, color=0),
              "2": node("EmptyImage", width=4, height=4, batch_size=1, color=0xFFFFFF),
              "3": node("ImageBatch", image1=["1", 0], image2=["2", 0]), "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["4"]["values"] == [[3, 8, 8, 3]]


def test_primitives_and_seed(runtime):
    prompt = {"1": node("PrimitiveInt", value=-5), "2": node("PrimitiveFloat", value=0.5),
              "3": node("PrimitiveString", value="a"), "4": node("PrimitiveStringMultiline", value="b\nc"),
              "5": node("PrimitiveBoolean", value=True), "6": node("Seed", seed=2 ** 63),
              **{f"o{i}": node("TestOutput", value=[str(i), 0]) for i in range(1, 7)}}
    outcome, _ = run(runtime, prompt)
    assert [outcome.outputs[f"o{i}"]["values"][0] for i in range(1, 7)] == [-5, 0.5, "a", "b\nc", True, 2 ** 63]
    info = runtime.registry.object_info_for("Seed")
    assert info["input"]["required"]["seed"][1]["control_after_generate"] is True


def test_sixteen_bit_images_are_scaled_to_0_1():
    from nodes.image import pil_to_tensor

    image = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    values = pil_to_tensor(image)[0, 0, :, 0]
    assert torch.allclose(values, torch.tensor([0.0, 127 / 255, 1.0]), atol=1 / 255)
