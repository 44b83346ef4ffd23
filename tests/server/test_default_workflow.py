"""ComfyUI's default workflow, through the real server with the built-in nodes, on a tiny random
checkpoint: full event sequence, the image through /view, then a fully cached second run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from server.context import ServerConfig
from tests.server.harness import ServerThread, names

REQUIRED = ("CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
            "VAEDecode", "SaveImage")
CHECKPOINT = "tiny-sd1.safetensors"


def default_workflow(seed: int = 156680208700286) -> dict[str, Any]:
    """ComfyUI's default graph (node ids and wiring), shrunk to 64x64 and 2 steps."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": 2, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64,
                                                           "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "text": "beautiful scenery nature glass bottle landscape, purple galaxy bottle,",
            "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark",
                                                         "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI",
                                                    "images": ["8", 0]}},
    }


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    from app.bootstrap import create_runtime
    from app.settings import Settings
    from tools.make_tiny_checkpoint import make_tiny_checkpoint

    base = tmp_path_factory.mktemp("default-workflow")
    make_tiny_checkpoint("sd1", base / "models" / "checkpoints" / CHECKPOINT)
    runtime = create_runtime(Settings(base_directory=base, cpu=True, cache_ram_gb=1.0,
                                      preview_method="latent2rgb"), load_custom_nodes=False)
    missing = [name for name in REQUIRED if name not in runtime.registry]
    if missing:
        pytest.skip(f"built-in nodes not available yet: {missing}")
    with ServerThread(runtime, ServerConfig(port=0, web_root=Path(base) / "no-editor")) as server:
        yield server


@pytest.mark.slow
def test_default_workflow_runs_then_is_fully_cached(real_server: ServerThread) -> None:
    socket = real_server.websocket(feature_flags={"supports_preview_metadata": True})
    first = real_server.queue_prompt(default_workflow(), socket.sid)
    events = socket.until_done(first, timeout=240)
    sequence = names(events)
    assert sequence[:2] == ["execution_start", "execution_cached"], sequence
    assert sequence[-2:] == ["execution_success", "executing"], sequence
    ran = [m["data"]["node"] for m in events if m["type"] == "executing" and m["data"]["node"]]
    assert set(ran) == {"3", "4", "5", "6", "7", "8", "9"}
    assert ran.index("4") < ran.index("3") < ran.index("8") < ran.index("9")
    steps = [m["data"] for m in events if m["type"] == "progress" and m["data"]["node"] == "3"]
    assert steps and steps[-1]["value"] == steps[-1]["max"] == 2
    executed = [m["data"] for m in events if m["type"] == "executed"]
    assert [e["node"] for e in executed] == ["9"]
    # sampler previews arrive as type-4 frames (this client announced preview metadata)
    assert socket.binaries and all(frame[:4] == b"\x00\x00\x00\x04" for frame in socket.binaries)
    image = executed[0]["output"]["images"][0]
    assert image["type"] == "output" and image["filename"].startswith("ComfyUI_")

    picture = real_server.get(f"/view?filename={image['filename']}&type=output"
                              f"&subfolder={image['subfolder']}")
    assert picture.status == 200 and picture.body[:4] == b"\x89PNG"
    from io import BytesIO

    from PIL import Image
    assert Image.open(BytesIO(picture.body)).size == (64, 64)
    history = real_server.wait_history(first)
    assert history["outputs"]["9"]["images"][0] == image
    assert {r["state"] for r in history["lg"]["run_report"].values()} == {"ran"}

    second = real_server.queue_prompt(default_workflow(), socket.sid)
    again = socket.until_done(second, timeout=120)
    cached = next(m["data"]["nodes"] for m in again if m["type"] == "execution_cached")
    assert sorted(cached) == ["3", "4", "5", "6", "7", "8", "9"]
    assert "progress" not in names(again)
    assert [m["data"]["output"] for m in again if m["type"] == "executed"] == [
        executed[0]["output"]]
    report = real_server.wait_history(second)["lg"]["run_report"]
    assert {r["state"] for r in report.values()} == {"cached"}
    socket.close()


@pytest.mark.slow
def test_changed_seed_reruns_only_the_sampler_and_below(real_server: ServerThread) -> None:
    socket = real_server.websocket()
    prompt_id = real_server.queue_prompt(default_workflow(seed=7), socket.sid)
    events = socket.until_done(prompt_id, timeout=240)
    cached = next(m["data"]["nodes"] for m in events if m["type"] == "execution_cached")
    assert sorted(cached) == ["4", "5", "6", "7"]
    report = real_server.wait_history(prompt_id)["lg"]["run_report"]
    assert {node for node, r in report.items() if r["state"] == "ran"} == {"3", "8", "9"}
    assert "seed" in report["3"]["reason"] or report["3"]["reason"]
    socket.close()
