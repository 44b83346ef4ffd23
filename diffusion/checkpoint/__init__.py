"""Single-file checkpoint loading: safe file reading, family detection, network construction."""

from diffusion.checkpoint.detect import CheckpointInfo
from diffusion.checkpoint.errors import CheckpointError
from diffusion.checkpoint.loader import LoadedCheckpoint, load_checkpoint, load_unet_file, load_vae_file

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "LoadedCheckpoint",
    "load_checkpoint",
    "load_unet_file",
    "load_vae_file",
]
