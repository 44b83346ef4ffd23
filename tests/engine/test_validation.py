"""Whole-prompt validation: ComfyUI's error shapes, per-node errors and partial success."""

import pytest

from engine.validation import validate_prompt
from tests.support.engine_fixtures import node


def validate(runtime, prompt, targets=None):
    return validate_prompt(prompt, runtime.registry, targets)


def errors_of(result, node_id):
    return [e["type"] for e in result.node_errors[node_id]["errors"]]


def test_a_valid_prompt_passes_and_returns_comfyui_tuple(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    assert result.as_tuple() == (True, None, ["2"], {})


def test_unknown_class_is_an_invalid_prompt(runtime):
    result = validate(runtime, {"1": node("NoSuchNode")})
    assert not result.ok
    assert result.error["type"] == "invalid_prompt"
    assert "NoSuchNode does not exist" in result.error["message"]
    assert result.error["details"] == "Node ID '#1'"
    assert set(result.error) == {"type", "message", "details", "extra_info"}


def test_missing_class_type_is_an_invalid_prompt(runtime):
    result = validate(runtime, {"1": {"inputs": {}}})
    assert result.error["type"] == "invalid_prompt"
    assert "class_type" in result.error["message"]


def test_prompt_without_outputs(runtime):
    result = validate(runtime, {"1": node("TestIntConstant", value=1)})
    assert result.error["type"] == "prompt_no_outputs"


def test_missing_required_input(runtime):
    result = validate(runtime, {"1": node("TestOutput")})
    assert not result.ok
    assert result.error["type"] == "prompt_outputs_failed_validation"
    entry = result.node_errors["1"]
    assert entry["class_type"] == "TestOutput" and entry["dependent_outputs"] == ["1"]
    assert entry["errors"][0] == {"type": "required_input_missing", "message": "Required input is missing",
                                  "details": "value", "extra_info": {"input_name": "value"}}


@pytest.mark.parametrize("link, expected", [
    (["1"], "Bad linked input"),
    (["1", 0, 1], "Bad linked input"),
    (["9", 0], "Linked node does not exist"),
    (["1", 3], "Linked output slot out of range"),
    (["1", "x"], "Bad linked input"),
])
def test_bad_links(runtime, link, expected):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=link)}
    result = validate(runtime, prompt)
    error = result.node_errors["2"]["errors"][0]
    assert error["type"] == "bad_linked_input"
    assert error["message"].startswith(expected)
    assert error["extra_info"]["input_name"] == "value"


def test_integer_node_ids_in_links_are_accepted(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=[1, 0])}
    result = validate(runtime, prompt)
    assert result.ok and result.prompt["2"]["inputs"]["value"] == ["1", 0]
    assert prompt["2"]["inputs"]["value"] == [1, 0]  # the caller's prompt is left alone


def test_type_mismatch(runtime):
    prompt = {"1": node("TestImage", width=8, height=8, value=0.5), "2": node("TestAdd", a=["1", 0], b=1),
              "3": node("TestOutput", value=["2", 0])}
    result = validate(runtime, prompt)
    error = result.node_errors["2"]["errors"][0]
    assert error["type"] == "return_type_mismatch"
    assert error["details"] == "a, received_type(IMAGE) mismatch input_type(INT)"
    assert error["extra_info"]["received_type"] == "IMAGE" and error["extra_info"]["linked_node"] == ["1", 0]
    # the output is reported as dependent on the failing node, and is not itself reported
    assert "3" not in result.node_errors and result.node_errors["2"]["dependent_outputs"] == ["3"]


def test_unions_and_wildcards_match(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestNumberOutput", value=["1", 0]),
              "3": node("TestImage", width=8, height=8, value=0.1), "4": node("TestOutput", value=["3", 0]),
              "5": node("TestBlock", value=["1", 0], block=False, message=""),
              "6": node("TestAdd", a=["5", 0], b=1), "7": node("TestOutput", value=["6", 0])}
    assert validate(runtime, prompt).ok  # INT into "INT,FLOAT", IMAGE into "*", "*" into INT


def test_union_without_overlap_is_a_mismatch(runtime):
    prompt = {"1": node("TestImage", width=8, height=8, value=0.1), "2": node("TestNumberOutput", value=["1", 0])}
    assert errors_of(validate(runtime, prompt), "2") == ["return_type_mismatch"]


@pytest.mark.parametrize("value, coerced", [("7", 7), (7.0, 7), (True, 1), (" 12 ", 12), ("3.0", 3)])
def test_int_coercion(runtime, value, coerced):
    prompt = {"1": node("TestIntConstant", value=value), "2": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    assert result.ok
    assert result.prompt["1"]["inputs"]["value"] == coerced and type(result.prompt["1"]["inputs"]["value"]) is int
    assert prompt["1"]["inputs"]["value"] == value  # the caller's prompt is not modified


@pytest.mark.parametrize("value", ["seven", 7.5, [1, 2, 3], {"a": 1}])
def test_int_coercion_failures(runtime, value):
    prompt = {"1": node("TestIntConstant", value=value), "2": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    types = errors_of(result, "1")
    assert types == (["bad_linked_input"] if isinstance(value, list) else ["invalid_input_type"])


def test_float_bool_string_coercion(runtime):
    prompt = {"1": node("TestCombos", legacy="red", modern="small", number="1.5", flag="true", text=12),
              "2": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    assert result.ok
    assert result.prompt["1"]["inputs"] | {} == {"legacy": "red", "modern": "small", "number": 1.5,
                                                 "flag": True, "text": "12"}


def test_bool_coercion_rejects_garbage(runtime):
    prompt = {"1": node("TestCombos", legacy="red", modern="small", flag="maybe"), "2": node("TestOutput", value=["1", 0])}
    assert errors_of(validate(runtime, prompt), "1") == ["invalid_input_type"]


def test_min_and_max(runtime):
    prompt = {"1": node("TestImage", width=0, height=65, value=0.5), "2": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    errors = result.node_errors["1"]["errors"]
    assert [e["type"] for e in errors] == ["value_smaller_than_min", "value_bigger_than_max"]
    assert errors[0]["message"] == "Value 0 smaller than min of 1"
    assert errors[1]["message"] == "Value 65 bigger than max of 64"
    assert errors[0]["extra_info"]["received_value"] == 0


def test_legacy_combo_membership(runtime):
    prompt = {"1": node("TestCombos", legacy="purple", modern="small"), "2": node("TestOutput", value=["1", 0])}
    error = validate(runtime, prompt).node_errors["1"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == "legacy: 'purple' not in ['red', 'green', 'blue']"


def test_new_style_combo_membership_is_checked_too(runtime):
    prompt = {"1": node("TestCombos", legacy="red", modern="huge"), "2": node("TestOutput", value=["1", 0])}
    error = validate(runtime, prompt).node_errors["1"]["errors"][0]
    assert error["type"] == "value_not_in_list" and error["extra_info"]["input_name"] == "modern"


def test_wrapped_list_values_are_unwrapped(runtime):
    prompt = {"1": node("TestCombos", legacy={"__value__": "green"}, modern="large"),
              "2": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    assert result.ok and result.prompt["1"]["inputs"]["legacy"] == "green"


def test_custom_validation_owns_its_inputs(runtime):
    ok = {"1": node("TestCustomValidation", value=12), "2": node("TestOutput", value=["1", 0])}
    assert validate(runtime, ok).ok  # 12 > max 10, but VALIDATE_INPUTS takes `value`
    odd = {"1": node("TestCustomValidation", value=3), "2": node("TestOutput", value=["1", 0])}
    error = validate(runtime, odd).node_errors["1"]["errors"][0]
    assert error == {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                     "details": "value - 3 is odd", "extra_info": {"input_name": "value"}}


def test_validator_with_input_types_replaces_the_type_check(runtime):
    prompt = {"1": node("TestStringOutput", text="x"), "2": node("TestInputTypesValidation", value=["1", 0]),
              "3": node("TestOutput", value=["2", 0])}
    assert validate(runtime, prompt).ok  # STRING into INT accepted by the node's own rule
    prompt["1"] = node("TestImage", width=8, height=8, value=0.5)
    error = validate(runtime, prompt).node_errors["2"]["errors"][0]
    assert error["type"] == "custom_validation_failed" and "cannot take IMAGE" in error["details"]


def test_cycles_are_reported_on_every_node_of_the_cycle(runtime):
    prompt = {"1": node("TestAdd", a=["2", 0], b=1), "2": node("TestAdd", a=["1", 0], b=1),
              "3": node("TestOutput", value=["2", 0])}
    result = validate(runtime, prompt)
    assert not result.ok
    assert errors_of(result, "1") == ["dependency_cycle"] and errors_of(result, "2") == ["dependency_cycle"]
    assert "3" not in result.node_errors


def test_self_loop_is_a_cycle(runtime):
    prompt = {"1": node("TestAdd", a=["1", 0], b=1), "2": node("TestOutput", value=["1", 0])}
    assert errors_of(validate(runtime, prompt), "1") == ["dependency_cycle"]


def test_valid_outputs_survive_when_others_fail(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestImage", width=999, height=8, value=0.5), "4": node("TestOutput", value=["3", 0])}
    result = validate(runtime, prompt)
    assert result.ok and result.error is None
    assert result.good_outputs == ["2"]
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]


def test_shared_failing_node_lists_every_dependent_output(runtime):
    prompt = {"1": node("TestIntConstant", value="bad"), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestOutput", value=["1", 0])}
    result = validate(runtime, prompt)
    assert result.node_errors["1"]["dependent_outputs"] == ["2", "3"]
    assert result.error["details"].startswith("Failed to convert an input value to a INT value")


def test_partial_targets_only_validate_the_chosen_outputs(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestOutput")}
    result = validate(runtime, prompt, targets=["2"])
    assert result.ok and result.good_outputs == ["2"] and result.node_errors == {}


def test_unreachable_nodes_are_not_validated(runtime):
    prompt = {"1": node("TestIntConstant", value="broken"), "2": node("TestIntConstant", value=1),
              "3": node("TestOutput", value=["2", 0])}
    assert validate(runtime, prompt).node_errors == {}


def test_deep_chain_validates_without_recursion_limits(runtime):
    prompt = {"0": node("TestIntConstant", value=0)}
    for i in range(1, 5000):
        prompt[str(i)] = node("TestAdd", a=[str(i - 1), 0], b=1)
    prompt["out"] = node("TestOutput", value=["4999", 0])
    result = validate(runtime, prompt)
    assert result.ok and len(result.order) == 5001 and result.order[0] == "0"


class _Unbounded:
    """A node with INT and FLOAT inputs that declare no min/max: only coercion guards them."""

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("FLOAT", {}), "n": ("INT", {})}}

    def run(self, x, n):
        return (x + n,)


def _unbounded_registry():
    from engine.registry import NodeRegistry

    registry = NodeRegistry()
    registry.register("TestUnbounded", _Unbounded)
    return registry


@pytest.mark.parametrize("value", ["1e999", "-1e999", "inf", "-Infinity", "nan", "NaN",
                                   float("inf"), float("-inf"), float("nan"), 1e308 * 10])
@pytest.mark.parametrize("input_name", ["x", "n"])
def test_non_finite_numbers_are_refused(value, input_name):
    inputs = {"x": 1.5, "n": 2, input_name: value}
    result = validate_prompt({"1": node("TestUnbounded", **inputs)}, _unbounded_registry())
    assert not result.ok and result.error["type"] == "prompt_outputs_failed_validation"
    [error] = result.node_errors["1"]["errors"]
    expected_type = "FLOAT" if input_name == "x" else "INT"
    assert error["type"] == "invalid_input_type"
    assert error["message"] == f"Failed to convert an input value to a {expected_type} value"
    assert error["extra_info"]["input_name"] == input_name
    assert "not a finite number" in error["extra_info"]["exception_message"]
    assert "not a finite number" in error["details"]


def test_non_finite_is_refused_even_where_min_and_max_are_declared(runtime):
    prompt = {"1": node("TestCombos", legacy="red", modern="small", number="nan"),
              "2": node("TestOutput", value=["1", 0])}
    assert errors_of(validate(runtime, prompt), "1") == ["invalid_input_type"]


@pytest.mark.parametrize("value, coerced", [("1e300", 1e300), (-1e300, -1e300), ("2.5", 2.5)])
def test_large_finite_floats_still_pass_when_unbounded(value, coerced):
    result = validate_prompt({"1": node("TestUnbounded", x=value, n=0)}, _unbounded_registry())
    assert result.ok and result.prompt["1"]["inputs"]["x"] == coerced


def test_int_beyond_python_digit_limit_is_a_conversion_error_not_a_crash():
    huge = "9" * 5000  # int() refuses strings this long; as a float it is infinite
    result = validate_prompt({"1": node("TestUnbounded", x=0.0, n=huge)}, _unbounded_registry())
    [error] = result.node_errors["1"]["errors"]
    assert error["type"] == "invalid_input_type"


def test_huge_whole_ints_are_caught_by_the_declared_max(runtime):
    prompt = {"1": node("TestImage", width=10 ** 400, height=8, value=0.5),
              "2": node("TestOutput", value=["1", 0])}
    assert errors_of(validate(runtime, prompt), "1") == ["value_bigger_than_max"]
    prompt["1"]["inputs"]["width"] = 1e300  # a whole float: converted, then over the max
    assert errors_of(validate(runtime, prompt), "1") == ["value_bigger_than_max"]
