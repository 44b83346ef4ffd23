"""`python main.py run`: API, ComfyUI UI and PNG workflows, overrides, errors and exit codes."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cli.run import main, parse_override

REPO = Path(__file__).resolve().parents[2]

API = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": 0x00FF00}},
       "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
       "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cli"},
             "_meta": {"title": "Save"}}}

UI = {"last_node_id": 3, "last_link_id": 2, "version": 0.4, "groups": [], "config": {}, "extra": {},
      "nodes": [
          {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [],
           "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [8, 4, 1, 255]},
          {"id": 2, "type": "ImageInvert", "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
           "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}]},
          {"id": 3, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
           "outputs": [], "widgets_values": ["from_ui"]}],
      "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]}


def invoke(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv] + ["--no-progress"], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def base(tmp_path):
    return tmp_path / "base"


def test_runs_an_api_prompt_and_prints_the_written_files(tmp_path, base):
    (tmp_path / "wf.json").write_text(json.dumps(API))
    code, out, err = invoke(tmp_path / "wf.json", "--base-directory", base)
    assert code == 0, err
    written = base / "output" / "cli_00001_.png"
    assert out.strip() == str(written)
    with Image.open(written) as image:
        assert image.getpixel((0, 0)) == (255, 0, 255)
        assert json.loads(image.text["prompt"])["3"]["class_type"] == "SaveImage"


def test_overrides_and_output_directory(tmp_path, base):
    (tmp_path / "wf.json").write_text(json.dumps(API))
    elsewhere = tmp_path / "elsewhere"
    code, out, err = invoke(tmp_path / "wf.json", "--base-directory", base, "--output-directory", elsewhere,
                            "--set", "Save.filename_prefix=renamed", "--set", "1.width=3")
    assert code == 0, err
    with Image.open(elsewhere / "renamed_00001_.png") as image:
        assert image.size == (3, 4)


def test_a_new_process_writes_a_new_file_never_overwriting(tmp_path, base):
    (tmp_path / "wf.json").write_text(json.dumps(API))
    invoke(tmp_path / "wf.json", "--base-directory", base)
    code, out, err = invoke(tmp_path / "wf.json", "--base-directory", base)
    # a new process has an empty cache: everything runs again and a new file is written
    assert code == 0 and "cli_00002_.png" in out


def test_runs_a_comfyui_ui_workflow(tmp_path, base):
    (tmp_path / "ui.json").write_text(json.dumps(UI))
    code, out, err = invoke(tmp_path / "ui.json", "--base-directory", base)
    assert code == 0, err
    path = base / "output" / "from_ui_00001_.png"
    assert out.strip() == str(path)
    with Image.open(path) as image:
        assert json.loads(image.text["workflow"]) == UI  # the UI workflow is embedded again


def test_runs_the_workflow_inside_a_png(tmp_path, base):
    (tmp_path / "wf.json").write_text(json.dumps(API))
    invoke(tmp_path / "wf.json", "--base-directory", base)
    png = base / "output" / "cli_00001_.png"
    code, out, err = invoke(png, "--base-directory", base, "--set", "3.filename_prefix=again")
    assert code == 0, err
    assert out.strip() == str(base / "output" / "again_00001_.png")


def test_validation_failure_exits_2_with_a_readable_message(tmp_path, base):
    broken = json.loads(json.dumps(API))
    broken["1"]["inputs"]["width"] = "wide"
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    code, out, err = invoke(tmp_path / "bad.json", "--base-directory", base)
    assert code == 2
    assert "failed validation" in err and "node 1 EmptyImage (EmptyImage)" in err and "width" in err


def test_escaping_prefix_is_refused_before_running(tmp_path, base):
    escaping = json.loads(json.dumps(API))
    escaping["3"]["inputs"]["filename_prefix"] = "../../outside"
    (tmp_path / "esc.json").write_text(json.dumps(escaping))
    code, out, err = invoke(tmp_path / "esc.json", "--base-directory", base)
    assert code == 2 and "filename_prefix" in err and "not allowed" in err
    assert not (tmp_path / "outside_00001_.png").exists()


def test_node_failure_exits_1(tmp_path, base):
    linked = json.loads(json.dumps(API))
    linked["4"] = {"class_type": "PrimitiveString", "inputs": {"value": "../../outside"}}
    linked["3"]["inputs"]["filename_prefix"] = ["4", 0]
    (tmp_path / "esc.json").write_text(json.dumps(linked))
    code, out, err = invoke(tmp_path / "esc.json", "--base-directory", base)
    assert code == 1
    assert "node 3 (SaveImage) failed" in err and "PathEscapeError" in err
    assert not (tmp_path / "outside_00001_.png").exists()


def test_unreadable_files_and_bad_overrides(tmp_path, base):
    (tmp_path / "junk.json").write_text("not json")
    assert invoke(tmp_path / "junk.json", "--base-directory", base)[0] == 2
    assert invoke(tmp_path / "missing.json", "--base-directory", base)[0] == 2
    (tmp_path / "wf.json").write_text(json.dumps(API))
    code, _, err = invoke(tmp_path / "wf.json", "--base-directory", base, "--set", "nodot=1")
    assert code == 2 and "NODE.INPUT=VALUE" in err
    code, _, err = invoke(tmp_path / "wf.json", "--base-directory", base, "--set", "Nobody.x=1")
    assert code == 2 and "no node" in err


def test_json_summary(tmp_path, base):
    (tmp_path / "wf.json").write_text(json.dumps(API))
    code, out, err = invoke(tmp_path / "wf.json", "--base-directory", base, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "success" and summary["exit_code"] == 0
    assert summary["files"] == [str(base / "output" / "cli_00001_.png")]
    assert summary["run_report"]["3"] == {"state": "ran", "reason": "new"}


def test_override_parsing():
    assert parse_override("3.seed=42") == ("3", "seed", 42)
    assert parse_override("My.Title.text=hello world") == ("My.Title", "text", "hello world")
    assert parse_override("4.model=[\"1\", 0]") == ("4", "model", ["1", 0])


def test_main_py_dispatches_to_run(tmp_path, base):
    (tmp_path / "wf.json").write_text(json.dumps(API))
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "run", str(tmp_path / "wf.json"),
                             "--base-directory", str(base)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(base / "output" / "cli_00001_.png")
    assert "node" in result.stderr  # the progress bar went to stderr
