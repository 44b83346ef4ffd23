"""`make run` places a demo checkpoint only when models/checkpoints is empty, named as noise."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from tools.place_demo_checkpoint import DEMO_NAME, place_demo_checkpoint


def test_demo_checkpoint_is_placed_once_and_only_when_needed(tmp_path: Path) -> None:
    placed = place_demo_checkpoint(tmp_path)
    assert placed == tmp_path / "models" / "checkpoints" / DEMO_NAME
    assert "random-noise" in placed.name
    with safe_open(str(placed), framework="pt") as handle:
        assert any(key.startswith("model.diffusion_model.") for key in handle.keys())
    assert [p.name for p in placed.parent.iterdir()] == [DEMO_NAME]  # no partial file left
    mtime = placed.stat().st_mtime_ns
    assert place_demo_checkpoint(tmp_path) is None
    assert placed.stat().st_mtime_ns == mtime


def test_an_existing_checkpoint_means_no_demo(tmp_path: Path) -> None:
    real = tmp_path / "models" / "checkpoints" / "sub" / "real.safetensors"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"x")
    assert place_demo_checkpoint(tmp_path) is None
    assert not (tmp_path / "models" / "checkpoints" / DEMO_NAME).exists()
