"""ComfyUI's node-call rules on their own: inputs as lists, list mapping, INPUT_IS_LIST,
OUTPUT_IS_LIST merging, blockers and async node functions."""

import asyncio

import pytest

from engine.blocker import ExecutionBlocker
from engine.callrules import (call_mapped, finish_coroutine, gather, has_blocker, hidden_values,
                              lazy_sources, merge)
from engine.errors import InterruptedByUser, NodeOutputError
from engine.interrupt import InterruptFlag
from engine.nodedef import OutputSpec


def outputs(*is_list: bool) -> tuple[OutputSpec, ...]:
    return tuple(OutputSpec(type="INT", name=f"out{i}", is_list=flag) for i, flag in enumerate(is_list))


def recorder():
    seen = []

    def function(**kwargs):
        seen.append(kwargs)
        return (sum(v for v in kwargs.values() if isinstance(v, int)),)

    return function, seen


# ---- gather ---------------------------------------------------------------------------------
def test_gather_turns_constants_into_one_value_and_links_into_their_slot_list():
    results = {"1": [[10, 11], ["a"]]}
    data = gather(["a", "b", "c"], {"a": ["1", 0], "b": 5, "c": ["1", 1]}, results.get, {})
    assert data == {"a": [10, 11], "b": [5], "c": ["a"]}


def test_gather_reads_an_unevaluated_link_as_none_and_skips_absent_or_undeclared_inputs():
    data = gather(["lazy", "absent"], {"lazy": ["7", 0], "extra": 3}, lambda source: None, {})
    assert data == {"lazy": [None]}


def test_gather_adds_hidden_values_as_single_values():
    data = gather(["a"], {"a": 1}, lambda source: None, {"unique_id": "3"})
    assert data == {"a": [1], "unique_id": ["3"]}


def test_hidden_values_by_kind():
    prompt = {"3": {"class_type": "X", "inputs": {}}}
    hidden = {"p": "PROMPT", "png": "EXTRA_PNGINFO", "me": "UNIQUE_ID", "dyn": "DYNPROMPT",
              "token": "AUTH_TOKEN_COMFY_ORG", "key": "API_KEY_COMFY_ORG"}
    extra = {"extra_pnginfo": {"workflow": {}}, "auth_token_comfy_org": "t", "api_key_comfy_org": "k"}
    assert hidden_values(hidden, "3", prompt, extra) == {
        "p": prompt, "png": {"workflow": {}}, "me": "3", "dyn": None, "token": "t", "key": "k"}


# ---- list mapping -----------------------------------------------------------------------------
def test_single_values_make_one_call():
    function, seen = recorder()
    assert call_mapped(function, {"a": [1], "b": [2]}, False) == [(3,)]
    assert seen == [{"a": 1, "b": 2}]


def test_a_node_without_inputs_is_called_once():
    function, seen = recorder()
    assert call_mapped(function, {}, False) == [(0,)]
    assert seen == [{}]


def test_lists_map_index_by_index_and_a_shorter_list_repeats_its_last_value():
    function, seen = recorder()
    call_mapped(function, {"a": [1, 2, 3], "b": [10, 20]}, False)
    assert seen == [{"a": 1, "b": 10}, {"a": 2, "b": 20}, {"a": 3, "b": 20}]


def test_an_empty_list_input_means_no_call():
    function, seen = recorder()
    assert call_mapped(function, {"a": [], "b": [1]}, False) == []
    assert seen == []


def test_input_is_list_gets_the_whole_lists_in_one_call():
    function, seen = recorder()
    call_mapped(function, {"a": [1, 2, 3], "b": [10]}, True)
    assert seen == [{"a": [1, 2, 3], "b": [10]}]


def test_a_call_with_a_blocker_is_not_made_and_yields_what_on_blocked_returns():
    function, seen = recorder()
    blocker = ExecutionBlocker("stop")
    results = call_mapped(function, {"a": [1, blocker, 3]}, False, on_blocked=lambda b: ("blocked", b))
    assert results == [(1,), ("blocked", blocker), (3,)]
    assert seen == [{"a": 1}, {"a": 3}]


def test_input_is_list_with_a_blocker_anywhere_is_not_called():
    function, seen = recorder()
    blocker = ExecutionBlocker(None)
    assert call_mapped(function, {"a": [1, blocker]}, True, on_blocked=lambda b: b) == [blocker]
    assert seen == []


def test_without_on_blocked_a_blocker_is_an_ordinary_value():
    seen = []
    blocker = ExecutionBlocker(None)
    call_mapped(lambda **kwargs: seen.append(kwargs), {"a": [blocker]}, False)
    assert seen == [{"a": blocker}]


def test_an_interrupt_stops_before_the_next_call():
    flag = InterruptFlag()
    seen = []

    def function(a):
        seen.append(a)
        flag.set()
        return (a,)

    with pytest.raises(InterruptedByUser):
        call_mapped(function, {"a": [1, 2, 3]}, False, interrupt=flag)
    assert seen == [1]


def test_async_node_functions_are_run_to_their_end():
    async def function(a):
        await asyncio.sleep(0)
        return (a * 2,)

    assert call_mapped(function, {"a": [1, 2]}, False) == [(2,), (4,)]


def test_an_async_node_function_inside_a_running_event_loop_is_refused():
    async def function():
        return (1,)

    async def inside_a_loop():
        finish_coroutine(function())

    with pytest.raises(NodeOutputError, match="event loop"):
        asyncio.run(inside_a_loop())


# ---- merging --------------------------------------------------------------------------------
def test_merge_collects_each_slot_across_calls():
    merged, ui = merge([(1, "a"), (2, "b")], outputs(False, False), "node 1 (X)")
    assert merged == [[1, 2], ["a", "b"]] and ui is None


def test_an_output_is_list_slot_concatenates_each_calls_list():
    merged, _ = merge([([1, 2], 0), ([3], 1)], outputs(True, False), "node 1 (X)")
    assert merged == [[1, 2, 3], [0, 1]]


def test_ui_dicts_merge_with_their_lists_concatenated():
    returns = [{"ui": {"images": [1], "text": "a"}, "result": (5,)}, {"ui": {"images": [2], "text": "b"}}]
    merged, ui = merge(returns, outputs(), "node 1 (X)")
    assert merged == [] and ui == {"images": [1, 2], "text": "b"}


def test_a_result_dict_supplies_the_outputs():
    merged, ui = merge([{"result": (7,)}], outputs(False), "node 1 (X)")
    assert merged == [[7]] and ui is None


def test_a_blocked_call_blocks_every_output_slot():
    blocker = ExecutionBlocker(None)
    merged, _ = merge([(1, [2, 3]), blocker], outputs(False, True), "node 1 (X)")
    assert merged == [[1, blocker], [2, 3, blocker]]
    assert has_blocker(merged) and not has_blocker([[1], [2, 3]])


@pytest.mark.parametrize("returned, message", [
    ((1,), "returned 1 values but RETURN_TYPES declares 2"),
    (5, "returned int"),
    ({"expand": {}}, "node expansion is not supported"),
])
def test_malformed_results_name_the_node(returned, message):
    with pytest.raises(NodeOutputError, match=message) as error:
        merge([returned], outputs(False, False), "node 4 (Thing)")
    assert str(error.value).startswith("node 4 (Thing)")


# ---- lazy inputs ----------------------------------------------------------------------------
def test_lazy_sources_are_the_linked_sources_of_the_names_asked_for_each_once():
    inputs = {"a": ["1", 0], "b": ["1", 1], "c": ["2", 0], "d": 5}
    assert lazy_sources([["a", "b"], "c", None, ["d"], []], inputs) == ["1", "2"]
    assert lazy_sources([None, []], inputs) == []
