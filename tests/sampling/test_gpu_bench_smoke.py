"""bench/gpu.py runs end to end with tiny models on the CPU and prints its JSON summary last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_gpu_bench_tiny_smoke_run():
    command = [sys.executable, "bench/gpu.py", "--tiny", "--skip-compile", "--skip-cold-start", "--families", "sd1",
               "--steps", "2", "--repeats", "1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["errors"] == {}
    assert summary["sd1_64_ksampler_its"] > 0 and summary["sd1_64_ksampler_previews_its"] > 0
    assert summary["sd1_64_previews_delivered_per_run"] >= 1
    assert summary["sd1_64_ours_vs_diffusers_rel_error"] < 1e-4  # same weights, same function
    assert summary["vae_decode_64_ours_vs_diffusers_max_abs"] < 1e-4
