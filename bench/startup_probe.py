"""Where a cold start spends its time before the first sampling step, in one fresh process.

Does what ``main.py run`` of the default workflow does up to its first UNet call, marking the
seconds since the process was created after each phase: interpreter, ``import torch``, CUDA
start-up, ``create_runtime`` (node modules), checkpoint load, text encoding (the CLIP weights go
to the device), first UNet call (the UNet goes to the device). bench/gpu.py runs it after timing
the real CLI; it prints one JSON object.

    python bench/startup_probe.py CHECKPOINT [--cpu] [--size 512]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil

BORN = psutil.Process().create_time()
MARKS: dict[str, float] = {}


def mark(name: str) -> None:
    MARKS[name] = round(time.time() - BORN, 3)


mark("interpreter_s")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)

    import torch

    mark("import_torch_s")
    cuda = torch.cuda.is_available() and not args.cpu
    if cuda:
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
    mark("cuda_init_s")

    from app.bootstrap import create_runtime
    from app.settings import Settings

    runtime = create_runtime(Settings(base_directory=args.checkpoint.parents[2], cpu=args.cpu))
    mark("create_runtime_s")
    imported = set(sys.modules)

    from diffusion.checkpoint import load_checkpoint

    loaded = load_checkpoint(args.checkpoint, runtime.services.model_manager)
    mark("load_checkpoint_s")
    clip = loaded.clip
    cond, pooled = clip.encode_from_tokens(clip.tokenize("a photo of a cat"), return_pooled=True)
    mark("text_encode_s")
    model = loaded.model
    latent = torch.randn(2, 4, args.size // 8, args.size // 8)
    out = model.apply_model(latent, torch.tensor([999.0, 999.0]), torch.cat([cond, cond]))
    float(out.float().abs().mean())  # waits for the device
    mark("first_unet_call_s")
    MARKS["transformers_imported_by_create_runtime"] = "transformers" in imported
    MARKS["diffusers_imported"] = "diffusers" in sys.modules
    print(json.dumps(MARKS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
