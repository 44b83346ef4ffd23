"""Validation's fast path (plain constants and well-formed links settled inline) gives exactly
the general path's answer: same normalised prompt, order, errors and outputs, for tricky values."""

import copy

import pytest

from engine.validation import _validate
from tests.support.engine_fixtures import node


def both_paths(runtime, prompt, targets=None):
    original = copy.deepcopy(prompt)
    fast = _validate(prompt, runtime.registry, targets, fast=True)
    general = _validate(prompt, runtime.registry, targets, fast=False)
    assert prompt == original  # neither path writes into the caller's prompt
    return fast, general


def assert_same(fast, general):
    assert fast.as_tuple() == general.as_tuple()
    assert fast.prompt == general.prompt
    assert fast.order == general.order
    assert set(fast.definitions) == set(general.definitions)
    for node_id, entry in fast.prompt.items():  # coerced values keep their exact type too
        for name, value in entry["inputs"].items():
            assert type(value) is type(general.prompt[node_id]["inputs"][name])


INT_VALUES = [0, 1, 64, 65, -3, True, False, 7.0, 7.5, "7", " 12 ", "3.0", "seven", None,
              {"__value__": 5}, {"__value__": True}, {"__value__": 99}, {"a": 1}, 10 ** 400, 1e300,
              float("nan"), float("inf"), "1e999", [1, 2, 3]]


@pytest.mark.parametrize("value", INT_VALUES, ids=repr)
def test_int_inputs_with_min_and_max(runtime, value):
    prompt = {"1": node("TestImage", width=value, height=8, value=0.5), "2": node("TestOutput", value=["1", 0])}
    assert_same(*both_paths(runtime, prompt))


@pytest.mark.parametrize("value", INT_VALUES, ids=repr)
def test_int_inputs_without_bounds(runtime, value):
    prompt = {"1": node("TestAdd", a=value, b=1), "2": node("TestOutput", value=["1", 0])}
    assert_same(*both_paths(runtime, prompt))


@pytest.mark.parametrize("inputs", [
    {"number": 0.5}, {"number": 1}, {"number": True}, {"number": "1.5"}, {"number": 2.5}, {"number": -0.0},
    {"number": float("nan")}, {"number": float("-inf")}, {"number": {"__value__": 1.5}},
    {"flag": True}, {"flag": 1}, {"flag": 0}, {"flag": 2}, {"flag": "true"}, {"flag": "maybe"},
    {"text": "x"}, {"text": 12}, {"text": True}, {"text": None}, {"text": {"__value__": "y"}},
    {"legacy": "purple"}, {"legacy": 1}, {"legacy": {"__value__": "green"}}, {"legacy": None},
    {"modern": "large"}, {"modern": "huge"}, {"modern": True},
], ids=repr)
def test_float_boolean_string_and_combo_inputs(runtime, inputs):
    prompt = {"1": node("TestCombos", **({"legacy": "red", "modern": "small"} | inputs)),
              "2": node("TestOutput", value=["1", 0])}
    assert_same(*both_paths(runtime, prompt))


@pytest.mark.parametrize("link", [
    ["1", 0], [1, 0], ["1", 0.0], ["1", 0.5], ["1", True], ["1", -1], ["1", 1], ["9", 0], ["1"], ["1", 0, 0],
    [None, 0], [1.0, 0], ["1", "0"], [],
], ids=repr)
def test_links_of_every_shape(runtime, link):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestAdd", a=link, b=1),
              "3": node("TestOutput", value=["2", 0])}
    assert_same(*both_paths(runtime, prompt))


def test_link_types_unions_and_wildcards(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestNumberOutput", value=["1", 0]),
              "3": node("TestImage", width=8, height=8, value=0.1), "4": node("TestOutput", value=["3", 0]),
              "5": node("TestBlock", value=["1", 0], block=False, message=""),
              "6": node("TestAdd", a=["5", 0], b=1), "7": node("TestOutput", value=["6", 0]),
              "8": node("TestAdd", a=["3", 0], b=1), "9": node("TestOutput", value=["8", 0]),
              "10": node("TestNumberOutput", value=["3", 0]), "11": node("TestNumberOutput", value=2.5)}
    fast, general = both_paths(runtime, prompt)
    assert_same(fast, general)
    assert set(fast.node_errors) == {"8", "10"}  # IMAGE into INT and into "INT,FLOAT"


def test_missing_and_extra_inputs_meta_and_odd_node_keys(runtime):
    prompt = {"1": {"class_type": "TestIntConstant", "inputs": {"value": 1, "unknown": [9, 9]},
                    "_meta": {"title": "one"}},
              "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0]}, "is_changed": "x"},
              "3": {"class_type": "TestOutput", "inputs": {"value": ["1", 0]}, "_meta": {}, "extra": 1},
              "4": {"class_type": "TestOutput"}, "5": node("TestOutput", value=["2", 0])}
    assert_same(*both_paths(runtime, prompt))


def test_custom_validators_cycles_and_partial_targets(runtime):
    prompt = {"1": node("TestCustomValidation", value=12), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestCustomValidation", value=3), "4": node("TestOutput", value=["3", 0]),
              "5": node("TestAdd", a=["6", 0], b=1), "6": node("TestAdd", a=["5", 0], b="2"),
              "7": node("TestOutput", value=["6", 0]), "8": node("TestAdd", a=["8", 0], b=1),
              "9": node("TestOutput", value=["8", 0])}
    assert_same(*both_paths(runtime, prompt))
    assert_same(*both_paths(runtime, prompt, targets=["2", 7]))


def test_shared_nodes_and_integer_ids(runtime):
    prompt = {1: node("TestIntConstant", value=1), "2": node("TestAdd", a=[1, 0], b=["1", 0]),
              "3": node("TestAdd", a=["2", 0], b=["1", 0]), "4": node("TestOutput", value=["3", 0]),
              "5": node("TestOutput", value=["2", 0])}
    fast, general = both_paths(runtime, prompt)
    assert_same(fast, general)
    assert fast.ok and fast.order == ["1", "2", "3", "4", "5"]
