"""Reading model files: aligned safetensors tensors memory-mapped without copies, unaligned ones copied
to aligned memory, pickles only with weights_only."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from diffusion.checkpoint import CheckpointError, load_checkpoint
from diffusion.checkpoint.files import TENSOR_ALIGNMENT, read_state_dict
from diffusion.checkpoint.tiny import tiny_checkpoint_state_dict
from diffusion.memory import ModelManager


class _Exploit:
    """Unpickling this creates a marker file — what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _file_offsets(path) -> dict[str, int]:
    """Each tensor's byte offset from the start of the file."""
    raw = path.read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_len])
    header.pop("__metadata__", None)
    return {name: 8 + header_len + entry["data_offsets"][0] for name, entry in header.items()}


def _aligned_resave(path, tmp_path, prefix=""):
    """The tensors under `prefix` and the metadata, with a metadata pad that makes the data start
    64-byte aligned (safetensors writers pad the header to 8 bytes only, so most files start
    unaligned, and one tensor of an odd size unaligns all that follow it)."""
    state, metadata = read_state_dict(path)
    state = {k: v.clone() for k, v in state.items() if k.startswith(prefix)}
    for pad in range(TENSOR_ALIGNMENT):
        target = tmp_path / f"aligned-{pad}.safetensors"
        save_file(state, str(target), metadata={**metadata, "pad": "x" * pad})
        header_len = struct.unpack("<Q", target.read_bytes()[:8])[0]
        if (8 + header_len) % TENSOR_ALIGNMENT == 0:
            return target
    raise AssertionError("no pad aligns the data start")


def _split_by_alignment(offsets: dict[str, int], names) -> tuple[list[str], list[str]]:
    aligned = [name for name in names if offsets[name] % TENSOR_ALIGNMENT == 0]
    unaligned = [name for name in names if offsets[name] % TENSOR_ALIGNMENT]
    assert len(aligned) >= 2 and unaligned, "the tiny file should hold both kinds"
    return aligned, unaligned


def _assert_mapped(tensors: dict[str, torch.Tensor], offsets: dict[str, int]) -> None:
    """Pointer distances equal file distances: the tensors are views of one mapping, not copies."""
    names = list(tensors)
    base = names[0]
    for name in names[1:]:
        moved = tensors[name].data_ptr() - tensors[base].data_ptr()
        assert moved == offsets[name] - offsets[base], name


def test_aligned_safetensors_tensors_are_views_into_one_mapping(tiny_checkpoint, tmp_path):
    path = _aligned_resave(tiny_checkpoint("sd1", text=False), tmp_path)
    state, metadata = read_state_dict(path)
    assert "latentgraph.arch" in metadata
    offsets = _file_offsets(path)
    aligned, unaligned = _split_by_alignment(offsets, list(state))
    _assert_mapped({k: state[k] for k in aligned}, offsets)
    for name in unaligned:  # copied: CPU kernels round differently on unaligned data
        assert state[name].data_ptr() % TENSOR_ALIGNMENT == 0, name


def test_unaligned_tensors_compute_like_fresh_memory(tiny_checkpoint):
    state, _ = read_state_dict(tiny_checkpoint("sd1", text=False))
    for name, tensor in state.items():
        assert tensor.data_ptr() % TENSOR_ALIGNMENT == 0, name


def test_loaded_aligned_fp32_weights_stay_in_the_mapping(tiny_checkpoint, cpu_manager, tmp_path):
    path = _aligned_resave(tiny_checkpoint("sd1", text=False), tmp_path, "model.diffusion_model.")
    unet = load_checkpoint(path, cpu_manager, load_clip=False, load_vae=False).model.diffusion_model
    params = {"model.diffusion_model." + k: v for k, v in unet.named_parameters()}
    offsets = _file_offsets(path)
    aligned, _ = _split_by_alignment(offsets, list(params))
    _assert_mapped({k: params[k] for k in aligned}, offsets)


def test_ckpt_loads_through_weights_only_and_unwraps_state_dict(tmp_path, cpu_manager):
    state, _ = tiny_checkpoint_state_dict("sd1", include_text=False)
    wrapped = {
        "state_dict": {**state, "betas": torch.zeros(1000), "model_ema.decay": torch.tensor(0.999)},
        "global_step": 470000,
    }
    path = tmp_path / "model.ckpt"
    torch.save(wrapped, path)
    read, metadata = read_state_dict(path)
    assert metadata == {}
    assert set(read) == set(state)
    loaded = load_checkpoint(path, cpu_manager, load_clip=False, overrides={})
    assert loaded.info.family == "sd1"  # heads from the SD1 default (8) also fit the tiny widths


def test_pickle_that_runs_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short"),
        (b"\xff" * 8 + b"junk", "bad header"),
        (b"\x05\x00\x00\x00\x00\x00\x00\x00{oops", "header"),
    ],
)
def test_corrupt_safetensors_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_state_dict(path)


def test_unknown_extension_and_missing_file(tmp_path):
    other = tmp_path / "model.gguf"
    other.write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match="unsupported"):
        read_state_dict(other)
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.safetensors")


def test_fp16_file_is_cast_to_the_compute_dtype(tmp_path):
    state, metadata = tiny_checkpoint_state_dict("sd1", include_text=False)
    path = tmp_path / "half.safetensors"
    save_file({k: v.half() for k, v in state.items()}, str(path), metadata=metadata)
    loaded = load_checkpoint(path, ModelManager("cpu"), load_clip=False)
    assert loaded.model.compute_dtype == torch.float32
    bf16 = load_checkpoint(path, ModelManager("cpu", prefer_bf16=True), load_clip=False)
    assert bf16.model.compute_dtype == torch.bfloat16
    x = torch.randn(1, 4, 8, 8)
    out = bf16.model.apply_model(x, torch.tensor([10.0]), torch.randn(1, 77, 32))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
