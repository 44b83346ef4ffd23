"""A pack written like a ComfyUI pack loads, lists files, runs with progress and interrupt, saves."""

from __future__ import annotations

import io
import itertools
import sys

import numpy as np
import pytest
from PIL import Image

from engine.events import RecordingListener
from engine.interrupt import InterruptFlag
from engine.loader import COMFYUI_COMPAT_DIRECTORY, load_custom_node_packs
from engine.registry import NodeRegistry
from engine.runtime import using_services

from .conftest import install_pack, make_runtime

_ids = itertools.count()


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def run(runtime, prompt, listener=None, **kwargs):
    listener = listener or RecordingListener()
    return runtime.executor.execute(prompt, f"compat-{next(_ids)}", listener, **kwargs), listener


def write_input_image(base, name="photo.png", size=(6, 4)):
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[..., 0] = 200
    Image.fromarray(array).save(base / "input" / name)


def test_pack_loads_and_appears_in_object_info(runtime):
    assert not runtime.registry.problems, [p.message for p in runtime.registry.problems]
    assert runtime.custom_packs["comfy_style_pack"]["ok"]
    info = runtime.registry.object_info()
    ckpt = info["StyleModelPath"]["input"]["required"]["ckpt_name"]
    assert ckpt[0] == ["tiny.safetensors"]  # folder_paths.get_filename_list in INPUT_TYPES
    assert "euler" in info["StyleModelPath"]["input"]["required"]["sampler"][0]
    assert info["StyleSlowInvert"]["display_name"] == "Slow Invert (ComfyUI style)"
    assert info["StyleSaveImage"]["output_node"] is True


def test_pack_folder_kind_and_tiled_model_run_end_to_end(runtime, base):
    info = runtime.registry.object_info_for("StyleTiledUpscale")
    assert info["input"]["required"]["model_name"][0] == ["half.safetensors"]  # folder the pack registered
    write_input_image(base, size=(13, 9))
    prompt = {"1": node("StyleLoadImage", image="photo.png"),
              "2": node("StyleTiledUpscale", image=["1", 0], model_name="half.safetensors"),
              "3": node("StyleSaveImage", images=["2", 0], filename_prefix="tiled")}
    outcome, events = run(runtime, prompt)
    assert outcome.status == "success", outcome.error
    progress = [(p["value"], p["max"]) for p in events.named("progress") if p["node"] == "2"]
    assert len(progress) == progress[-1][1] == progress[-1][0] > 1  # one tick per tile, ends full
    with Image.open(base / "output" / "tiled_00001_.png") as picture:
        assert picture.size == (26, 18)
        assert abs(picture.getpixel((25, 17))[0] - 100) <= 1  # 200 * gain 0.5 everywhere


def test_filename_list_follows_the_runtime_base_directory(base, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    install_pack(other)
    (other / "models" / "checkpoints").mkdir(parents=True)
    (other / "models" / "checkpoints" / "other.ckpt").write_bytes(b"x")
    first, second = make_runtime(base), make_runtime(other)
    import folder_paths  # importable once a runtime has loaded custom node packs
    for runtime, expected in ((first, ["tiny.safetensors"]), (second, ["other.ckpt"])):
        with using_services(runtime.services):  # as the server does per request
            info = runtime.registry.object_info_for("StyleModelPath")
        assert info["input"]["required"]["ckpt_name"][0] == expected
        with using_services(runtime.services):
            assert folder_paths.models_dir == str(runtime.paths.models_directory)
            assert folder_paths.folder_names_and_paths["checkpoints"][0] == [
                str(runtime.paths.models_directory / "checkpoints")]


def test_runs_with_progress_previews_and_saves(runtime, base):
    write_input_image(base)
    prompt = {
        "1": node("StyleLoadImage", image="photo.png"),
        "2": node("StyleSlowInvert", image=["1", 0], steps=3),
        "3": node("StyleUpscale", image=["2", 0], width=4, height=4),
        "4": node("StyleSaveImage", images=["3", 0], filename_prefix="compat/run_%width%"),
        "5": node("StyleModelPath", ckpt_name="tiny.safetensors", sampler="euler"),
    }
    outcome, events = run(runtime, prompt)
    assert outcome.status == "success", outcome.error
    progress = [e for e in events.named("progress") if e["node"] == "2"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    previews = [p for p in events.previews if p[1] == "2"]
    assert len(previews) == 3 and all(fmt == "JPEG" and img[:2] == b"\xff\xd8" for _, _, fmt, img in previews)
    assert max(Image.open(io.BytesIO(previews[0][3])).size) <= 16
    saved = outcome.outputs["4"]["images"]
    assert saved == [{"filename": "run_4_00001_.png", "subfolder": "compat", "type": "output"}]
    with Image.open(base / "output" / "compat" / "run_4_00001_.png") as picture:
        assert picture.size == (4, 4)
        assert abs(picture.getpixel((0, 0))[0] - (255 - 200)) <= 1  # inverted three times
    outcome, _ = run(runtime, {**prompt, "4": node("StyleSaveImage", images=["3", 0],
                                                      filename_prefix="compat/run_%width%_b")})
    assert outcome.outputs["4"]["images"][0]["filename"] == "run_4_b_00001_.png"


class _InterruptOnFirstProgress(RecordingListener):
    def __init__(self, flag):
        super().__init__()
        self.flag = flag

    def on_event(self, event, data):
        super().on_event(event, data)
        if event == "progress":
            self.flag.set()


def test_interrupt_reaches_comfyui_style_checks(runtime, base):
    write_input_image(base)
    flag = InterruptFlag()
    prompt = {"1": node("StyleLoadImage", image="photo.png"),
              "2": node("StyleSlowInvert", image=["1", 0], steps=50),
              "3": node("StyleSaveImage", images=["2", 0], filename_prefix="never")}
    outcome, events = run(runtime, prompt, _InterruptOnFirstProgress(flag), interrupt=flag)
    assert outcome.status == "interrupted" and outcome.error["node_id"] == "2"
    assert len(events.named("progress")) == 1
    assert not list((base / "output").glob("never*"))


def test_traversal_through_folder_paths_is_refused(runtime, base):
    (base / "secret.safetensors").write_bytes(b"secret")
    (base / "input" / "inside.png").write_bytes(b"x")
    outcome, events = run(runtime, {"1": node("StyleModelPathByText", name="../../secret.safetensors")})
    assert outcome.status == "error"
    error = events.named("execution_error")[0]
    assert error["node_id"] == "1" and error["exception_type"].endswith("PathEscapeError")
    # the same name that stays inside is fine
    outcome, _ = run(runtime, {"1": node("StyleModelPathByText", name="tiny.safetensors")})
    assert outcome.outputs["1"]["text"] == [str(base.resolve() / "models" / "checkpoints" / "tiny.safetensors")]

    import folder_paths
    from engine.errors import PathEscapeError

    with using_services(runtime.services):
        for bad in ("../secret.safetensors", "/etc/passwd", "a/../../secret.safetensors", "x\x00"):
            with pytest.raises(PathEscapeError):
                folder_paths.get_full_path("checkpoints", bad)
        for bad in ("../secret.safetensors", "../secret.safetensors [output]", "/etc/passwd [input]"):
            with pytest.raises(PathEscapeError):
                folder_paths.get_annotated_filepath(bad)
            assert folder_paths.exists_annotated_filepath(bad) is False
        assert folder_paths.exists_annotated_filepath("inside.png")
        assert folder_paths.get_annotated_filepath("inside.png [temp]") == str(base.resolve() / "temp" / "inside.png")
        with pytest.raises(PathEscapeError):
            folder_paths.get_save_image_path("../../escape", folder_paths.get_output_directory())
    # refused input names also fail validation (VALIDATE_INPUTS uses exists_annotated_filepath)
    outcome, _ = run(runtime, {"1": node("StyleLoadImage", image="../secret.safetensors"),
                               "2": node("StyleSaveImage", images=["1", 0], filename_prefix="x")})
    assert outcome.status == "error"


def test_blocker_from_comfy_execution_stops_downstream(runtime, base):
    write_input_image(base)
    prompt = {"1": node("StyleLoadImage", image="photo.png"),
              "2": node("StyleGate", image=["1", 0], open=False),
              "3": node("StyleSaveImage", images=["2", 0], filename_prefix="blocked")}
    outcome, _ = run(runtime, prompt)
    assert outcome.status == "success"
    assert "3" not in outcome.outputs or not outcome.outputs["3"].get("images")
    assert not list((base / "output").glob("blocked*"))


def test_packs_do_not_import_without_the_compat_layer(tmp_path, monkeypatch):
    install_pack(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(COMFYUI_COMPAT_DIRECTORY)])
    for name in [m for m in sys.modules if m.split(".")[0] in ("folder_paths", "comfy", "comfy_execution",
                                                               "node_helpers")]:
        monkeypatch.delitem(sys.modules, name)
    registry = NodeRegistry()
    summary = load_custom_node_packs(registry, tmp_path / "custom_nodes", comfyui_compat=False)
    assert summary["comfy_style_pack"]["ok"] is False
    assert "No module named" in registry.problems[0].message
    assert str(COMFYUI_COMPAT_DIRECTORY) not in sys.path


def test_missing_comfyui_pieces_are_reported_with_a_pointer(tmp_path):
    packs = tmp_path / "custom_nodes"
    packs.mkdir()
    (packs / "needs_server.py").write_text("from nodes import NotACoreNode\nNODE_CLASS_MAPPINGS = {}\n")
    (packs / "needs_sd.py").write_text("import comfy.not_a_comfy_module\nNODE_CLASS_MAPPINGS = {}\n")
    (packs / "needs_other.py").write_text("import not_a_module_anywhere\nNODE_CLASS_MAPPINGS = {}\n")
    registry = NodeRegistry()
    load_custom_node_packs(registry, packs)
    problems = {p.source: p.message for p in registry.problems}
    assert "NotACoreNode" in problems["custom_nodes/needs_server.py"]
    assert "comfy.not_a_comfy_module" in problems["custom_nodes/needs_sd.py"]
    for source in ("custom_nodes/needs_server.py", "custom_nodes/needs_sd.py"):
        assert "Latentgraph does not provide" in problems[source]
    assert "Latentgraph does not provide" not in problems["custom_nodes/needs_other.py"]


def test_compat_directory_joins_sys_path_only_when_packs_load(tmp_path):
    """Importing never touches sys.path; --disable-all-custom-nodes keeps the adapters away."""
    import subprocess
    from pathlib import Path

    install_pack(tmp_path)
    script = f"""
import sys
from app.bootstrap import create_runtime
from app.settings import Settings
from engine.loader import COMFYUI_COMPAT_DIRECTORY
entry = str(COMFYUI_COMPAT_DIRECTORY)
assert entry not in sys.path, "added at import"
create_runtime(Settings(base_directory={str(tmp_path)!r}, disable_all_custom_nodes=True))
assert entry not in sys.path and "folder_paths" not in sys.modules, "added while disabled"
runtime = create_runtime(Settings(base_directory={str(tmp_path)!r}))
assert entry in sys.path and runtime.custom_packs["comfy_style_pack"]["ok"]
print("ok")
"""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
