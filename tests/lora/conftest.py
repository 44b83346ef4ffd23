"""Fixtures for the LoRA tests: tiny checkpoints and LoRA files (written once per session)."""

import pytest

from diffusion.lora.tiny import write_random_lora
from tests.models.conftest import _single_thread, cpu_manager, tiny_checkpoint  # noqa: F401
from tools.make_tiny_checkpoint import make_tiny_checkpoint


@pytest.fixture(scope="session")
def lora_base(tmp_path_factory):
    """A base directory with tiny SD1/SDXL/refiner checkpoints and LoRA files of several formats."""
    root = tmp_path_factory.mktemp("lora_base")
    for variant in ("sd1", "sdxl", "sdxl-refiner"):
        make_tiny_checkpoint(variant, root / "models" / "checkpoints" / f"tiny-{variant}.safetensors")
    loras = root / "models" / "loras"
    for fmt in ("kohya", "loha", "peft", "lokr"):
        write_random_lora(loras / f"tiny-sd1-{fmt}.safetensors", fmt, "sd1", seed=1)
    write_random_lora(loras / "tiny-sd1-kohya.pt", "kohya", "sd1", seed=1)
    write_random_lora(loras / "tiny-sd1-lcm.safetensors", "kohya", "sd1", seed=5)  # stands in for an LCM-LoRA
    write_random_lora(loras / "tiny-sdxl-kohya.safetensors", "kohya", "sdxl", seed=2)
    return root
