"""Registration, object_info shape, built-in module discovery and custom node packs."""

import json
import textwrap

import pytest

from engine.errors import NodeRegistrationError, UnknownNodeError
from engine.loader import load_custom_node_packs, load_package_modules
from engine.registry import NodeRegistry
from tests.support.engine_fixtures import make_runtime


class Minimal:
    RETURN_TYPES = ("IMAGE", ["a", "b"])
    RETURN_NAMES = ("image", "choice")
    OUTPUT_IS_LIST = (False, True)
    OUTPUT_TOOLTIPS = ("the image", "a choice")
    FUNCTION = "run"
    CATEGORY = "image/test"
    DESCRIPTION = "does things"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seed": ("INT", {"default": 0, "control_after_generate": True}),
                             "mode": (["x", "y"],)},
                "optional": {"mask": ("MASK", {"tooltip": "m"})},
                "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}}

    def run(self, **kwargs):
        return (None, [])


def test_object_info_has_comfyui_shape():
    registry = NodeRegistry()
    registry.register("Minimal", Minimal, display_name="Minimal Node", module="nodes.test")
    info = registry.object_info_for("Minimal")
    assert info == {
        "input": {"required": {"image": ["IMAGE"], "seed": ["INT", {"default": 0, "control_after_generate": True}],
                               "mode": [["x", "y"]]},
                  "optional": {"mask": ["MASK", {"tooltip": "m"}]},
                  "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}},
        "input_order": {"required": ["image", "seed", "mode"], "optional": ["mask"], "hidden": ["prompt", "unique_id"]},
        "output": ["IMAGE", ["a", "b"]],
        "output_is_list": [False, True],
        "output_name": ["image", "choice"],
        "name": "Minimal",
        "display_name": "Minimal Node",
        "description": "does things",
        "python_module": "nodes.test",
        "category": "image/test",
        "output_node": False,
        "output_tooltips": ["the image", "a choice"],
    }
    json.dumps(registry.object_info())


def test_definition_is_typed():
    registry = NodeRegistry()
    definition = registry.register("Minimal", Minimal)
    assert [spec.type for spec in definition.inputs.values()] == ["IMAGE", "INT", "COMBO", "MASK"]
    assert definition.inputs["mode"].choices == ("x", "y")
    assert definition.inputs["seed"].is_widget and not definition.inputs["image"].is_widget
    assert [w.name for w in definition.widget_inputs()] == ["seed", "mode"]
    assert definition.outputs[1].type == "COMBO" and definition.outputs[1].is_list
    assert definition.hidden == {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}
    assert definition.has_unique_id


def test_name_collision_is_an_error_not_an_override():
    registry = NodeRegistry()
    registry.register("Minimal", Minimal, module="a")
    with pytest.raises(NodeRegistrationError, match="collides"):
        registry.register("Minimal", Minimal, module="b")
    assert registry.get("Minimal").python_module == "a"


@pytest.mark.parametrize("attrs, message", [
    ({"FUNCTION": "nope"}, "FUNCTION"),
    ({"RETURN_TYPES": "IMAGE"}, "RETURN_TYPES"),
    ({"RETURN_NAMES": ("a",)}, "RETURN_NAMES"),
    ({"INPUT_TYPES": classmethod(lambda cls: {"required": {"x": 5}})}, "must be a tuple"),
    ({"INPUT_TYPES": classmethod(lambda cls: 1 / 0)}, "INPUT_TYPES raised"),
])
def test_malformed_classes_are_rejected_clearly(attrs, message):
    bad = type("Bad", (Minimal,), attrs)
    with pytest.raises(NodeRegistrationError, match=message):
        NodeRegistry().register("Bad", bad)


def test_unknown_node_lookup():
    with pytest.raises(UnknownNodeError, match="does not exist"):
        NodeRegistry().get("Nope")


def test_dynamic_input_types_are_refreshed():
    choices = ["one.safetensors"]

    class Dynamic(Minimal):
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"name": (list(choices),)}}

    registry = NodeRegistry()
    first = registry.register("Dynamic", Dynamic)
    assert registry.current("Dynamic") is first
    choices.append("two.safetensors")
    assert registry.current("Dynamic").inputs["name"].choices == ("one.safetensors", "two.safetensors")
    assert registry.object_info_for("Dynamic")["input"]["required"]["name"] == [["one.safetensors", "two.safetensors"]]


def test_failing_builtin_module_is_reported_not_fatal(tmp_path, monkeypatch):
    package = tmp_path / "fakenodes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text(textwrap.dedent("""
        class Good:
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            def run(self):
                return (1,)
        NODE_CLASS_MAPPINGS = {"Good": Good}
        NODE_DISPLAY_NAME_MAPPINGS = {"Good": "Good node"}
    """))
    (package / "broken.py").write_text("import does_not_exist_anywhere\n")
    (package / "helpers.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import fakenodes

    registry = NodeRegistry()
    loaded = load_package_modules(registry, fakenodes)
    assert loaded == ["fakenodes.good"]
    assert registry.get("Good").display_name == "Good node"
    assert [p.source for p in registry.problems] == ["fakenodes.broken"]
    assert "does_not_exist_anywhere" in registry.problems[0].message


PACK_NODE = """
class {name}:
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "pack"
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{}}}}
    def run(self):
        return ({value},)
"""


def test_custom_node_packs_load_in_comfyui_layout(tmp_path):
    packs = tmp_path / "custom_nodes"
    (packs / "pack_a" / "web").mkdir(parents=True)
    (packs / "pack_a" / "impl.py").write_text(PACK_NODE.format(name="PackA", value=1))
    (packs / "pack_a" / "__init__.py").write_text(
        "from .impl import PackA\nNODE_CLASS_MAPPINGS = {'PackA': PackA}\n"
        "NODE_DISPLAY_NAME_MAPPINGS = {'PackA': 'Pack A'}\nWEB_DIRECTORY = './web'\n")
    (packs / "single.py").write_text(PACK_NODE.format(name="Single", value=2)
                                     + "NODE_CLASS_MAPPINGS = {'Single': Single}\n")
    (packs / "zz_collides.py").write_text(PACK_NODE.format(name="PackA", value=3)
                                          + PACK_NODE.format(name="Other", value=4)
                                          + "NODE_CLASS_MAPPINGS = {'PackA': PackA, 'Other': Other}\n")
    (packs / "broken").mkdir()
    (packs / "broken" / "__init__.py").write_text("raise RuntimeError('pack is broken')\n")
    (packs / "off.py.disabled").write_text("raise SystemExit\n")
    (packs / "exits.py").write_text("raise SystemExit(3)\n")
    (packs / "empty.py").write_text("X = 1\n")
    registry = NodeRegistry()
    summary = load_custom_node_packs(registry, packs)
    assert registry.get("PackA").python_module == "custom_nodes.pack_a"
    assert registry.get("PackA").display_name == "Pack A"
    assert registry.get("Single").python_module == "custom_nodes.single"
    assert "Other" in registry  # the colliding pack keeps its other nodes
    assert registry.web_directories == {"pack_a": (packs / "pack_a" / "web").resolve()}
    problems = {p.source: p.message for p in registry.problems}
    assert "collides" in problems["custom_nodes/zz_collides.py"]
    assert "pack is broken" in problems["custom_nodes/broken"]
    assert "SystemExit" in problems["custom_nodes/exits.py"]
    assert "no NODE_CLASS_MAPPINGS" in problems["custom_nodes/empty.py"]
    assert summary["pack_a"]["ok"] and not summary["zz_collides"]["ok"] and not summary["broken"]["ok"]
    assert "off" not in summary


def test_web_directory_cannot_escape_the_pack(tmp_path):
    packs = tmp_path / "custom_nodes"
    (packs / "sneaky").mkdir(parents=True)
    (packs / "sneaky" / "__init__.py").write_text("NODE_CLASS_MAPPINGS = {}\nWEB_DIRECTORY = '../../'\n")
    registry = NodeRegistry()
    load_custom_node_packs(registry, packs)
    assert registry.web_directories == {}
    assert "WEB_DIRECTORY rejected" in registry.problems[0].message


def test_runtime_loads_packs_from_the_base_directory(tmp_path):
    packs = tmp_path / "custom_nodes"
    packs.mkdir()
    (packs / "mine.py").write_text(PACK_NODE.format(name="Mine", value=5) + "NODE_CLASS_MAPPINGS = {'Mine': Mine}\n")
    runtime = make_runtime(tmp_path)
    assert "Mine" in runtime.registry and "TestAdd" in runtime.registry
    assert runtime.custom_packs["mine"]["nodes"] == ["Mine"]
    without = make_runtime(tmp_path, disable_all_custom_nodes=True)
    assert "Mine" not in without.registry


def test_builtin_nodes_register_without_problems(tmp_path):
    runtime = make_runtime(tmp_path)
    assert runtime.registry.problems == [] or all(
        not p.source.startswith("nodes.") for p in runtime.registry.problems), runtime.registry.problems


def test_the_example_pack_loads_and_runs(tmp_path):
    from pathlib import Path

    from tests.support.engine_fixtures import run

    source = Path(__file__).resolve().parents[2] / "custom_nodes" / "example_node.py.example"
    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "custom_nodes" / "example_node.py").write_text(source.read_text())
    runtime = make_runtime(tmp_path)
    assert runtime.registry.get("ExampleBrightness").display_name == "Brightness (example)"
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2, "batch_size": 2, "color": 0x808080}},
              "2": {"class_type": "ExampleBrightness", "inputs": {"image": ["1", 0], "amount": 2.0}},
              "3": {"class_type": "TestOutput", "inputs": {"value": ["2", 0]}}}
    outcome, events = run(runtime, prompt)
    assert outcome.ok
    assert outcome.outputs["3"]["values"][0][0][0][0] == [1.0, 1.0, 1.0]
    assert [e["value"] for e in events.named("progress")] == [1, 2]
