"""Execution semantics, modelled on the behaviours ComfyUI's executor suite covers."""

import threading

import torch

from engine.interrupt import InterruptFlag
from tests.support.engine_fixtures import calls, node, run


def ran(outcome):
    return sorted(n for n, r in outcome.run_report.items() if r["state"] == "ran")


def test_only_ancestors_of_outputs_run(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestIntConstant", value=99)}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok and ran(outcome) == ["1", "2"]
    assert ("TestIntConstant", 99) not in calls()


def test_event_payloads_have_comfyui_shapes(runtime):
    prompt = {"1": node("TestSlow", value=4, steps=2), "2": node("TestOutput", value=["1", 0])}
    outcome, events = run(runtime, prompt)
    start = events.named("execution_start")[0]
    assert set(start) == {"prompt_id", "timestamp"} and start["prompt_id"] == outcome.prompt_id
    assert set(events.named("execution_cached")[0]) == {"nodes", "prompt_id", "timestamp"}
    assert events.named("executing")[0] == {"node": "1", "display_node": "1", "prompt_id": outcome.prompt_id}
    assert events.named("progress")[0] == {"value": 1, "max": 2, "prompt_id": outcome.prompt_id, "node": "1"}
    state = events.named("progress_state")[-1]
    assert set(state) == {"prompt_id", "nodes"}
    assert set(state["nodes"]["1"]) == {"value", "max", "state", "node_id", "prompt_id", "display_node_id",
                                        "parent_node_id", "real_node_id"}
    assert state["nodes"]["2"]["state"] == "finished"
    assert events.named("executed")[0] == {"node": "2", "display_node": "2", "output": {"values": [4]},
                                           "prompt_id": outcome.prompt_id}
    assert set(events.named("execution_success")[0]) == {"prompt_id", "timestamp"}
    assert events.previews == [(outcome.prompt_id, "1", "JPEG", b"\xff\xd8fake")]
    assert [m[0] for m in outcome.messages] == ["execution_start", "execution_cached", "execution_success"]
    assert events.named("lg.run_report")[0]["nodes"] == outcome.run_report
    assert events.named("lg.plan") == [{"prompt_id": outcome.prompt_id, "pending": ["1", "2"], "cached": []}]


def test_lazy_switch_evaluates_only_the_taken_branch(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestIntConstant", value=2),
              "3": node("TestLazySwitch", switch=True, on_true=["1", 0], on_false=["2", 0]),
              "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["4"] == {"values": [1]}
    assert ("TestIntConstant", 2) not in calls()
    assert outcome.run_report["2"]["state"] == "skipped"
    prompt["3"]["inputs"]["switch"] = False
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["4"] == {"values": [2]}


def test_lazy_inputs_can_be_requested_in_stages(runtime):
    prompt = {"1": node("TestIntConstant", value=5), "2": node("TestIntConstant", value=7),
              "3": node("TestLazyBoth", first=["1", 0], second=["2", 0]), "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["4"] == {"values": [12]}
    prompt["1"]["inputs"]["value"] = -5
    calls().clear()
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["4"] == {"values": [-5]}


def test_lazy_input_served_from_cache(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "4": node("TestOutput", value=["1", 0]),
              "3": node("TestLazySwitch", switch=True, on_true=["1", 0], on_false=["1", 0]),
              "5": node("TestOutput", value=["3", 0])}
    run(runtime, {"1": prompt["1"], "4": prompt["4"]})
    outcome, _ = run(runtime, prompt)
    assert outcome.ok and outcome.outputs["5"] == {"values": [1]}
    assert outcome.run_report["1"]["state"] == "cached"


def test_output_is_list_maps_the_consumer_over_items(runtime):
    prompt = {"1": node("TestMakeList", start=10, count=3), "2": node("TestAdd", a=["1", 0], b=1),
              "3": node("TestOutput", value=["2", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["3"] == {"values": [11, 12, 13]}
    assert [c for c in calls() if c[0] == "TestAdd"] == [("TestAdd", (10, 1)), ("TestAdd", (11, 1)),
                                                          ("TestAdd", (12, 1))]


def test_shorter_lists_repeat_their_last_item(runtime):
    prompt = {"1": node("TestMakeList", start=0, count=3), "2": node("TestMakeList", start=100, count=2),
              "3": node("TestAdd", a=["1", 0], b=["2", 0]), "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["4"] == {"values": [100, 102, 103]}


def test_input_is_list_receives_whole_lists(runtime):
    prompt = {"1": node("TestMakeList", start=1, count=4), "2": node("TestListSum", values=["1", 0]),
              "3": node("TestOutput", value=["2", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs["3"] == {"values": [10]}
    assert ("TestListSum", (1, 2, 3, 4)) in calls()


def test_empty_list_calls_the_consumer_zero_times(runtime):
    prompt = {"1": node("TestMakeList", start=1, count=0), "2": node("TestAdd", a=["1", 0], b=1),
              "3": node("TestListSum", values=["2", 0]), "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok and outcome.outputs["4"] == {"values": [0]}
    assert not [c for c in calls() if c[0] == "TestAdd"]


def test_execution_blocker_stops_downstream_silently(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestBlock", value=["1", 0], block=True, message=""),
              "3": node("TestAdd", a=["2", 0], b=1), "4": node("TestOutput", value=["3", 0]),
              "5": node("TestOutput", value=["1", 0])}
    outcome, events = run(runtime, prompt)
    assert outcome.ok
    assert "4" not in outcome.outputs and outcome.outputs["5"] == {"values": [1]}
    assert not [c for c in calls() if c[0] == "TestAdd"]
    assert not events.named("execution_error")


def test_execution_blocker_with_message_reports_once_and_continues(runtime):
    prompt = {"1": node("TestIntConstant", value=1),
              "2": node("TestBlock", value=["1", 0], block=True, message="stop here"),
              "4": node("TestOutput", value=["2", 0]), "5": node("TestOutput", value=["1", 0])}
    outcome, events = run(runtime, prompt)
    assert outcome.ok and outcome.outputs == {"5": {"values": [1]}}
    errors = events.named("execution_error")
    assert len(errors) == 1
    assert errors[0]["exception_type"] == "ExecutionBlocked" and errors[0]["exception_message"] == "stop here"
    assert errors[0]["node_id"] == "4"


def test_node_exception_stops_the_prompt_with_an_error_record(runtime):
    prompt = {"1": node("TestIntConstant", value=3), "2": node("TestRaise", value=["1", 0], message="kaput"),
              "3": node("TestOutput", value=["2", 0])}
    outcome, events = run(runtime, prompt)
    assert outcome.status == "error"
    error = outcome.error
    assert error["node_id"] == "2" and error["node_type"] == "TestRaise"
    assert error["exception_message"] == "kaput" and error["exception_type"] == "RuntimeError"
    assert error["current_inputs"] == {"value": [3], "message": ["kaput"]}
    assert any("raise RuntimeError" in line for line in error["traceback"])
    assert error["executed"] == ["1"]
    assert set(error) == {"prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
                          "traceback", "current_inputs", "current_outputs", "timestamp"}
    assert events.names()[-1] == "execution_error"
    assert outcome.messages[-1][0] == "execution_error"
    # the process (and the executor) keep working; the successful upstream node stays cached
    prompt["2"] = node("TestAdd", a=["1", 0], b=1)
    again, _ = run(runtime, prompt)
    assert again.ok and again.run_report["1"]["state"] == "cached"


def test_node_returning_too_few_values_is_an_error(runtime):
    class Bad:
        RETURN_TYPES = ("INT", "INT")
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            return (1,)

    runtime.registry.register("BadReturn", Bad)
    outcome, _ = run(runtime, {"1": node("BadReturn"), "2": node("TestOutput", value=["1", 1])})
    assert outcome.status == "error" and "RETURN_TYPES declares 2" in outcome.error["exception_message"]


def test_hidden_inputs_are_filled(runtime):
    prompt = {"7": node("TestHidden", value=1)}
    outcome, _ = run(runtime, prompt, extra_data={"extra_pnginfo": {"workflow": {"nodes": []}}})
    assert outcome.outputs["7"] == {"prompt_nodes": ["7"], "extra_pnginfo": [{"workflow": {"nodes": []}}],
                                    "unique_id": ["7"]}


def test_output_node_returning_ui_and_result(runtime):
    prompt = {"1": node("TestIntConstant", value=4), "2": node("TestPassthroughOutput", value=["1", 0]),
              "3": node("TestAdd", a=["2", 0], b=1), "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs == {"2": {"values": [4]}, "4": {"values": [5]}}


def test_invalid_outputs_do_not_stop_valid_ones(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestOutput", value=["9", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok and outcome.outputs == {"2": {"values": [1]}}
    assert outcome.node_errors["3"]["errors"][0]["type"] == "bad_linked_input"


def test_a_prompt_failing_validation_reports_an_error(runtime):
    outcome, events = run(runtime, {"1": node("TestOutput")})
    assert outcome.status == "error"
    assert outcome.error["type"] == "prompt_outputs_failed_validation"
    assert outcome.error["node_errors"]["1"]["errors"][0]["type"] == "required_input_missing"
    assert events.named("execution_error")[0]["exception_type"] == "ValidationError"


def test_missing_node_type_fails_cleanly(runtime):
    outcome, _ = run(runtime, {"1": node("DoesNotExist"), "2": node("TestOutput", value=["1", 0])})
    assert outcome.status == "error" and outcome.error["type"] == "invalid_prompt"


def test_interrupt_before_start_stops_at_the_first_node(runtime):
    flag = InterruptFlag()
    flag.set()
    outcome, events = run(runtime, {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0])},
                          interrupt=flag)
    assert outcome.status == "interrupted"
    assert not calls()
    interrupted = events.named("execution_interrupted")[0]
    assert set(interrupted) == {"prompt_id", "node_id", "node_type", "executed", "timestamp"}


def test_interrupt_takes_effect_at_the_next_progress_tick(runtime):
    flag = InterruptFlag()
    prompt = {"1": node("TestInterruptOnCall", value=1), "2": node("TestOutput", value=["1", 0])}
    outcome, _ = run(runtime, prompt, interrupt=flag)
    assert outcome.status == "interrupted" and outcome.error["node_id"] == "1"
    assert ("TestInterruptOnCall", 1) in calls() and ("TestInterruptOnCall.after", 1) not in calls()
    assert ("TestOutput", 1) not in calls()
    # a new prompt with a fresh flag runs normally
    outcome, _ = run(runtime, prompt, interrupt=InterruptFlag())
    assert outcome.status == "interrupted"  # the node interrupts itself again: it was not cached
    prompt["1"] = node("TestIntConstant", value=1)
    outcome, _ = run(runtime, prompt, interrupt=InterruptFlag())
    assert outcome.ok


def test_interrupt_from_another_thread(runtime):
    flag = InterruptFlag()
    gate = threading.Event()

    class Waits:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            from engine.runtime import report_progress

            gate.set()
            for step in range(1000):
                report_progress(step, 1000)
                threading.Event().wait(0.005)
            return (1,)

    runtime.registry.register("Waits", Waits)
    threading.Thread(target=lambda: (gate.wait(5), flag.set())).start()
    outcome, _ = run(runtime, {"1": node("Waits"), "2": node("TestOutput", value=["1", 0])}, interrupt=flag)
    assert outcome.status == "interrupted"


def test_node_instances_persist_per_node_id(runtime):
    class Counter:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        NOT_IDEMPOTENT = True

        def __init__(self):
            self.count = 0

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"x": ("INT", {"default": 0})}}

        def run(self, x):
            self.count += 1
            return (self.count,)

    runtime.registry.register("Counter", Counter)
    first, _ = run(runtime, {"1": node("Counter", x=1), "2": node("TestOutput", value=["1", 0])})
    second, _ = run(runtime, {"1": node("Counter", x=2), "2": node("TestOutput", value=["1", 0])})
    assert first.outputs["2"] == {"values": [1]} and second.outputs["2"] == {"values": [2]}


def test_nodes_run_in_inference_mode(runtime):
    prompt = {"1": node("TestImage", width=2, height=2, value=0.25), "2": node("TestOutput", value=["1", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok
    image = [c for c in calls() if c[0] == "TestOutput"][0][1]
    assert isinstance(image, torch.Tensor) and image.is_inference()


def test_a_5000_node_chain_runs_without_recursion_limits(runtime):
    prompt = {"0": node("TestIntConstant", value=0)}
    for i in range(1, 5000):
        prompt[str(i)] = node("TestAdd", a=[str(i - 1), 0], b=1)
    prompt["out"] = node("TestOutput", value=["4999", 0])
    outcome, _ = run(runtime, prompt)
    assert outcome.ok and outcome.outputs["out"] == {"values": [4999]}


def test_a_node_calling_sys_exit_only_fails_its_prompt(runtime):
    class Exits:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            raise SystemExit(1)

    runtime.registry.register("Exits", Exits)
    outcome, _ = run(runtime, {"1": node("Exits"), "2": node("TestOutput", value=["1", 0])})
    assert outcome.status == "error" and outcome.error["exception_type"] == "SystemExit"


def test_a_failing_listener_does_not_break_the_prompt(runtime):
    class Broken:
        def on_event(self, event, data):
            raise ConnectionResetError("client went away")

        def on_preview(self, prompt_id, node_id, image_format, image):
            raise ConnectionResetError("client went away")

    prompt = {"1": node("TestSlow", value=2, steps=2), "2": node("TestOutput", value=["1", 0])}
    outcome = runtime.executor.execute(prompt, "p", Broken())
    assert outcome.ok and outcome.outputs["2"] == {"values": [2]}


def test_async_node_functions_and_lazy_checks_are_awaited(runtime):
    import asyncio

    class AsyncDouble:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT", {"lazy": True})}}

        async def check_lazy_status(self, value=None):
            await asyncio.sleep(0)
            return ["value"] if value is None else []

        async def run(self, value):
            from engine.runtime import report_progress

            await asyncio.sleep(0)
            report_progress(1, 1)
            return (value * 2,)

    runtime.registry.register("AsyncDouble", AsyncDouble)
    prompt = {"1": node("TestIntConstant", value=21), "2": node("AsyncDouble", value=["1", 0]),
              "3": node("TestOutput", value=["2", 0])}
    outcome, events = run(runtime, prompt)
    assert outcome.ok and outcome.outputs["3"] == {"values": [42]}
    assert events.named("progress")[0]["node"] == "2"


def test_partial_execution_runs_only_the_requested_outputs(runtime):
    prompt = {"1": node("TestIntConstant", value=1), "2": node("TestOutput", value=["1", 0]),
              "3": node("TestIntConstant", value=2), "4": node("TestOutput", value=["3", 0])}
    outcome, _ = run(runtime, prompt, outputs=["4"])
    assert outcome.ok and outcome.outputs == {"4": {"values": [2]}}
    assert ("TestIntConstant", 1) not in calls()


def test_single_value_fast_path_matches_the_general_path(tmp_path):
    """Plain nodes take a fast call path; the mutation check forces the general list path.
    Both must give the same outputs, ui, reports and failure records."""
    import asyncio

    from engine.blocker import ExecutionBlocker
    from tests.support.engine_fixtures import make_runtime

    class AsyncPlusOne:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}, "hidden": {"unique_id": "UNIQUE_ID"}}

        async def run(self, value, unique_id):
            await asyncio.sleep(0)
            return (value + 1,)

    class BlockOdd:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        def run(self, value):
            return (ExecutionBlocker(None) if value % 2 else value,)

    class Show:
        RETURN_TYPES = ()
        FUNCTION = "run"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}, "optional": {"mode": ("STRING", {"default": "list"})}}

        def run(self, value, mode="list"):
            if mode == "fail":
                raise ValueError(f"cannot show {value}")
            if mode == "scalar":
                return {"ui": {"value": value, "text": "x"}, "result": None}
            if mode == "none":
                return {"ui": None}
            return {"ui": {"value": [value]}}

    prompts = [
        {"1": node("TestIntConstant", value=2), "2": node("AsyncPlusOne", value=["1", 0]),
         "3": node("Show", value=["2", 0]), "4": node("Show", value=["1", 0], mode="scalar"),
         "5": node("Show", value=["1", 0], mode="none")},
        {"1": node("TestIntConstant", value=3), "2": node("BlockOdd", value=["1", 0]), "3": node("Show", value=["2", 0]),
         "4": node("TestIntConstant", value=4), "5": node("BlockOdd", value=["4", 0]), "6": node("Show", value=["5", 0])},
        {"1": node("TestIntConstant", value=5), "2": node("Show", value=["1", 0], mode="fail")},
    ]
    seen = []
    for check in (False, True):
        runtime = make_runtime(tmp_path / str(check), debug_mutation_check=check)
        for name, cls in (("AsyncPlusOne", AsyncPlusOne), ("BlockOdd", BlockOdd), ("Show", Show)):
            runtime.registry.register(name, cls)
        results = []
        for prompt in prompts:
            outcome, events = run(runtime, prompt)
            error = {k: v for k, v in (outcome.error or {}).items() if k not in ("prompt_id", "timestamp", "traceback")}
            results.append((outcome.status, outcome.outputs, outcome.run_report, error, events.named("executed")))
        seen.append(results)
    fast, general = seen
    assert fast[0][0] == "success" and fast[0][1]["3"] == {"value": [3]}
    assert fast[0][1]["4"] == {"value": 2, "text": "x"} and "5" not in fast[0][1]
    assert fast[1][1] == {"6": {"value": [4]}}  # the odd value was blocked
    assert fast[2][0] == "error" and fast[2][3]["current_inputs"] == {"value": [5], "mode": ["fail"]}
    for a, b in zip(fast, general):
        assert a[:4] == b[:4]
        assert [{k: v for k, v in e.items() if k != "prompt_id"} for e in a[4]] == \
               [{k: v for k, v in e.items() if k != "prompt_id"} for e in b[4]]
