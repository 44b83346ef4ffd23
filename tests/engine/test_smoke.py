"""The public engine API end to end on a three-node graph."""

from tests.support.engine_fixtures import node, run


def test_a_chain_runs_then_is_served_from_the_cache(runtime):
    prompt = {"1": node("TestIntConstant", value=2), "2": node("TestAdd", a=["1", 0], b=3),
              "3": node("TestOutput", value=["2", 0])}
    first, events = run(runtime, prompt)
    assert first.status == "success"
    assert first.outputs == {"3": {"values": [5]}}
    assert {n: r["state"] for n, r in first.run_report.items()} == {"1": "ran", "2": "ran", "3": "ran"}
    assert events.names()[0] == "execution_start" and events.names()[-1] == "execution_success"
    second, events = run(runtime, prompt)
    assert {r["state"] for r in second.run_report.values()} == {"cached"}
    assert second.outputs == {"3": {"values": [5]}}
    assert [d["node"] for d in events.named("executed")] == ["3"]  # cached output re-sent
