"""/object_info of the merge and save nodes of issue 11: ComfyUI's names, categories, inputs (in order),
defaults, outputs and display names, transcribed from ComfyUI's comfy_extras/nodes_model_merging.py,
nodes_model_merging_model_specific.py and nodes_lora_extract.py, through the real start-up."""

from __future__ import annotations

import pytest

from tests.support.engine_fixtures import make_runtime

MM, SPECIFIC = "advanced/model_merging", "advanced/model_merging/model_specific"
_ = None  # a link or a combo without a declared default
PAIR = {"model1": _, "model2": _}
CLIPS = {"clip1": _, "clip2": _}
SD1_BLOCKS = (["time_embed.", "label_emb."] + [f"input_blocks.{i}." for i in range(12)]
              + [f"middle_block.{i}." for i in range(3)] + [f"output_blocks.{i}." for i in range(12)] + ["out."])
SDXL_BLOCKS = (["time_embed.", "label_emb."] + [f"input_blocks.{i}" for i in range(9)]
               + [f"middle_block.{i}" for i in range(3)] + [f"output_blocks.{i}" for i in range(9)] + ["out."])

# name: (category, outputs, required {input: default}, optional inputs, output node)
SPEC: dict[str, tuple[str, list[str], dict[str, object], dict[str, object], bool]] = {
    "ModelMergeSimple": (MM, ["MODEL"], {**PAIR, "ratio": 1.0}, {}, False),
    "ModelMergeBlocks": (MM, ["MODEL"], {**PAIR, "input": 1.0, "middle": 1.0, "out": 1.0}, {}, False),
    "ModelMergeSubtract": (MM, ["MODEL"], {**PAIR, "multiplier": 1.0}, {}, False),
    "ModelMergeAdd": (MM, ["MODEL"], PAIR, {}, False),
    "ModelMergeSD1": (SPECIFIC, ["MODEL"], {**PAIR, **dict.fromkeys(SD1_BLOCKS, 1.0)}, {}, False),
    "ModelMergeSD2": (SPECIFIC, ["MODEL"], {**PAIR, **dict.fromkeys(SD1_BLOCKS, 1.0)}, {}, False),
    "ModelMergeSDXL": (SPECIFIC, ["MODEL"], {**PAIR, **dict.fromkeys(SDXL_BLOCKS, 1.0)}, {}, False),
    "CLIPMergeSimple": (MM, ["CLIP"], {**CLIPS, "ratio": 1.0}, {}, False),
    "CLIPMergeSubtract": (MM, ["CLIP"], {**CLIPS, "multiplier": 1.0}, {}, False),
    "CLIPMergeAdd": (MM, ["CLIP"], CLIPS, {}, False),
    "CheckpointSave": (MM, [], {"model": _, "clip": _, "vae": _, "filename_prefix": "checkpoints/ComfyUI"}, {}, True),
    "CLIPSave": (MM, [], {"clip": _, "filename_prefix": "clip/ComfyUI"}, {}, True),
    "VAESave": (MM, [], {"vae": _, "filename_prefix": "vae/ComfyUI_vae"}, {}, True),
    "ModelSave": (MM, [], {"model": _, "filename_prefix": "diffusion_models/ComfyUI"}, {}, True),
    "LoraSave": ("_for_testing", [], {"filename_prefix": "loras/ComfyUI_extracted_lora", "rank": 8, "lora_type": _,
                                      "bias_diff": True}, {"model_diff": _, "text_encoder_diff": _}, True),
}
DISPLAY = {"CheckpointSave": "Save Checkpoint", "LoraSave": "Extract and Save Lora"}
RANGES = {("ModelMergeSimple", "ratio"): (0.0, 1.0, 0.01), ("ModelMergeSubtract", "multiplier"): (-10.0, 10.0, 0.01),
          ("ModelMergeSDXL", "out."): (0.0, 1.0, 0.01), ("LoraSave", "rank"): (1, 4096, 1)}


@pytest.fixture(scope="module")
def object_info(tmp_path_factory):
    return make_runtime(tmp_path_factory.mktemp("info")).registry.object_info()


def _default(entry: list) -> object:
    return entry[1].get("default") if len(entry) > 1 else None


@pytest.mark.parametrize("name", sorted(SPEC))
def test_object_info_entry_matches_comfyui(object_info, name):
    category, outputs, required, optional, output_node = SPEC[name]
    info = object_info[name]
    assert info["category"] == category
    assert info["output"] == outputs
    assert info["output_node"] is output_node
    assert list(info["input"]["required"]) == list(required)
    assert list(info["input"].get("optional", {})) == list(optional)
    for section, expected in (("required", required), ("optional", optional)):
        for input_name, default in expected.items():
            assert _default(info["input"][section][input_name]) == default, (name, input_name)
    assert info["display_name"] == DISPLAY.get(name, name)
    if output_node and name != "LoraSave":
        assert info["input"]["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


@pytest.mark.parametrize("key", sorted(RANGES))
def test_numeric_ranges_match_comfyui(object_info, key):
    name, input_name = key
    options = object_info[name]["input"]["required"][input_name][1]
    assert (options["min"], options["max"], options["step"]) == RANGES[key]


def test_lora_save_choices_match_comfyui(object_info):
    assert object_info["LoraSave"]["input"]["required"]["lora_type"][0] == ["standard", "full_diff"]
    assert object_info["LoraSave"]["experimental"] is True
