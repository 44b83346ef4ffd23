"""Property tests: random DAGs give the arithmetic answer, and caching is structural."""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.engine_fixtures import make_runtime, node, run


@st.composite
def dags(draw):
    """A random DAG of TestAdd nodes over a few constants; returns (prompt, expected outputs)."""
    n_const = draw(st.integers(1, 3))
    n_add = draw(st.integers(1, 12))
    prompt, values = {}, {}
    for i in range(n_const):
        value = draw(st.integers(-50, 50))
        prompt[f"c{i}"] = node("TestIntConstant", value=value)
        values[f"c{i}"] = value
    ids = list(prompt)
    for i in range(n_add):
        a = draw(st.sampled_from(ids))
        b_is_link = draw(st.booleans())
        b = draw(st.sampled_from(ids)) if b_is_link else draw(st.integers(-5, 5))
        prompt[f"a{i}"] = node("TestAdd", a=[a, 0], b=[b, 0] if b_is_link else b)
        values[f"a{i}"] = values[a] + (values[b] if b_is_link else b)
        ids.append(f"a{i}")
    sinks = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
    expected = {}
    for j, source in enumerate(sinks):
        prompt[f"o{j}"] = node("TestOutput", value=[source, 0])
        expected[f"o{j}"] = {"values": [values[source]]}
    return prompt, expected


def renumber(prompt, seed):
    ids = list(prompt)
    shuffled = ids[:]
    random.Random(seed).shuffle(shuffled)
    mapping = {old: f"n{index}" for index, old in enumerate(shuffled)}
    renamed = {}
    for old, entry in prompt.items():
        inputs = {k: [mapping[v[0]], v[1]] if isinstance(v, list) else v for k, v in entry["inputs"].items()}
        renamed[mapping[old]] = {"class_type": entry["class_type"], "inputs": inputs}
    return renamed, mapping


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dags(), st.integers(0, 1000))
def test_random_graphs_compute_correctly_and_renumbering_keeps_the_cache(tmp_path, graph, seed):
    prompt, expected = graph
    runtime = make_runtime(tmp_path)
    first, _ = run(runtime, prompt)
    assert first.ok and first.outputs == expected
    renamed, mapping = renumber(prompt, seed)
    second, _ = run(runtime, renamed)
    assert second.ok
    assert {r["state"] for r in second.run_report.values()} <= {"cached", "skipped"}
    assert second.outputs == {mapping[k]: v for k, v in expected.items()}
    # each distinct computation ran once in the first prompt (identical subgraphs deduplicated)
    assert sum(r["state"] == "ran" for r in first.run_report.values()) == len(
        {runtime.executor._fingerprints[n] for n in first.run_report if first.run_report[n]["state"] != "skipped"})
