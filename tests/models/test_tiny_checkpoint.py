"""tools/make_tiny_checkpoint.py: deterministic per seed, exact key layout, usable from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from diffusion.checkpoint.arch import UNET_PREFIX, VAE_PREFIX
from tools.make_tiny_checkpoint import make_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path):
    a = make_tiny_checkpoint("sd1", tmp_path / "a.safetensors", seed=3)
    b = make_tiny_checkpoint("sd1", tmp_path / "b.safetensors", seed=3)
    c = make_tiny_checkpoint("sd1", tmp_path / "c.safetensors", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_key_counts_follow_the_released_layout(tmp_path):
    path = make_tiny_checkpoint("sdxl", tmp_path / "xl.safetensors")
    with safe_open(str(path), "pt") as handle:
        keys = list(handle.keys())
    assert sum(k.startswith(UNET_PREFIX) for k in keys) == 1680
    assert sum(k.startswith(VAE_PREFIX) for k in keys) == 248


def test_command_line_writes_the_file_and_rejects_bad_input(tmp_path):
    out = tmp_path / "tiny.safetensors"
    done = subprocess.run(
        [
            sys.executable,
            "tools/make_tiny_checkpoint.py",
            "--family",
            "sd2-v",
            "--out",
            str(out),
            "--seed",
            "1",
        ],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with safe_open(str(out), "pt") as handle:
        assert "v_pred" in list(handle.keys())
    bad = subprocess.run(
        [sys.executable, "tools/make_tiny_checkpoint.py", "--family", "sd3", "--out", str(out)],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.parametrize("variant", ["nope", ""])
def test_unknown_variant_is_a_clear_error(tmp_path, variant):
    with pytest.raises(ValueError, match="unknown tiny family"):
        make_tiny_checkpoint(variant, tmp_path / "x.safetensors")
