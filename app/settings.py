"""Settings shared by `main.py run` and the server, and the command-line flags that fill them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PREVIEW_METHODS = ("auto", "none", "latent2rgb", "taesd")
GIB = 1024 ** 3


@dataclass
class Settings:
    """Everything start-up needs; built from flags, or directly in tests and scripts."""

    base_directory: Path = REPO_ROOT
    output_directory: Path | None = None
    input_directory: Path | None = None
    temp_directory: Path | None = None
    user_directory: Path | None = None
    extra_model_paths_config: tuple[Path, ...] = ()  # besides <base>/extra_model_paths.yaml
    cpu: bool = False
    cache_ram_gb: float | None = None  # None: derived from the RAM free at start-up
    cache_none: bool = False
    lowvram: bool = False
    vram_budget_gb: float | None = None
    bf16: bool = False
    compile: bool = False
    preview_method: str = "auto"
    preview_size: int = 512
    disable_metadata: bool = False
    debug_mutation_check: bool = False
    disable_all_custom_nodes: bool = False
    verbose: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # front-door specific values

    def __post_init__(self) -> None:
        self.base_directory = Path(self.base_directory).expanduser().resolve()
        for name in ("output_directory", "input_directory", "temp_directory", "user_directory"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value).expanduser().resolve())
        self.extra_model_paths_config = tuple(Path(p).expanduser().resolve()
                                              for p in self.extra_model_paths_config or ())
        if self.preview_method not in PREVIEW_METHODS:
            raise ValueError(f"preview_method must be one of {PREVIEW_METHODS}, got {self.preview_method!r}")
        if self.cache_ram_gb is not None and self.cache_ram_gb < 0:
            raise ValueError("cache_ram_gb must be >= 0")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        """Pick the Settings fields out of a parsed namespace (extra flags are ignored)."""
        names = {f.name for f in fields(cls)} - {"extra"}
        values = {name: getattr(args, name) for name in names if hasattr(args, name)}
        if values.get("base_directory") is None:
            values.pop("base_directory", None)
        return cls(**values)

    def node_settings(self) -> dict[str, Any]:
        """The flags nodes may read through engine.runtime.services().settings."""
        return {"preview_method": self.preview_method, "preview_size": self.preview_size,
                "disable_metadata": self.disable_metadata, "debug_mutation_check": self.debug_mutation_check,
                "cpu": self.cpu, "lowvram": self.lowvram, "bf16": self.bf16, "compile": self.compile,
                "vram_budget_gb": self.vram_budget_gb}

    def cache_budget_bytes(self, available_ram: int | None = None, total_ram: int | None = None) -> int | None:
        """RAM budget of the output cache: --cache-ram, else derived from the RAM free right now.

        The default is 80% of the free RAM, capped at half of the machine's RAM: cached values
        include the loaded models (several GB), and a budget smaller than a checkpoint would
        mean reloading it for every prompt.
        """
        if self.cache_ram_gb is not None:
            return int(self.cache_ram_gb * GIB)
        if available_ram is None or total_ram is None:
            import psutil

            memory = psutil.virtual_memory()
            available_ram = int(memory.available) if available_ram is None else available_ram
            total_ram = int(memory.total) if total_ram is None else total_ram
        return max(min(int(available_ram * 0.8), total_ram // 2), 512 * 1024 * 1024)


def _gigabytes(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags every front door (run, server) accepts."""
    paths = parser.add_argument_group("paths")
    paths.add_argument("--base-directory", type=Path, default=None,
                       help="where models/, input/, output/, temp/, user/ and custom_nodes/ live "
                            "(default: the repository root)")
    paths.add_argument("--output-directory", type=Path, default=None, help="override output/")
    paths.add_argument("--input-directory", type=Path, default=None, help="override input/")
    paths.add_argument("--temp-directory", type=Path, default=None, help="override temp/")
    paths.add_argument("--user-directory", type=Path, default=None, help="override user/")
    paths.add_argument("--extra-model-paths-config", type=Path, action="append", default=[],
                       metavar="PATH", dest="extra_model_paths_config",
                       help="a ComfyUI extra_model_paths.yaml naming more model directories "
                            "(repeatable; <base>/extra_model_paths.yaml is always read if present)")
    device = parser.add_argument_group("device and memory")
    device.add_argument("--cpu", action="store_true", help="run everything on the CPU")
    device.add_argument("--lowvram", action="store_true", help="keep model weights off the GPU between uses")
    device.add_argument("--vram-budget", dest="vram_budget_gb", type=_gigabytes, default=None, metavar="GB",
                        help="GPU memory the model manager may use")
    device.add_argument("--bf16", action="store_true", help="compute in bfloat16 where supported")
    device.add_argument("--compile", action="store_true",
                        help="compile the UNet with torch.compile and replay its steps as CUDA graphs: faster "
                             "sampling after a one-off compile per resolution and batch size (cached on disk)")
    cache = parser.add_argument_group("caching")
    mode = cache.add_mutually_exclusive_group()
    mode.add_argument("--cache-ram", dest="cache_ram_gb", type=_gigabytes, default=None, metavar="GB",
                      help="RAM budget for cached node outputs, models included (default: 80%% of the "
                           "free RAM at start, at most half of all RAM)")
    mode.add_argument("--cache-none", action="store_true",
                      help="keep no node outputs between prompts (less RAM, more recomputation)")
    cache.add_argument("--debug-mutation-check", action="store_true",
                       help="detect nodes that modify their input values in place (slow)")
    misc = parser.add_argument_group("output")
    misc.add_argument("--preview-method", choices=PREVIEW_METHODS, default="auto",
                      help="how sampler previews are decoded")
    misc.add_argument("--preview-size", type=int, default=512, help="longest side of preview images")
    misc.add_argument("--disable-metadata", action="store_true",
                      help="do not embed the prompt and workflow in saved files")
    misc.add_argument("--disable-all-custom-nodes", action="store_true", help="load no custom_nodes packs")
    misc.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser
