"""Structural caching across prompts, deduplication, run reasons, forcing, eviction, mutation checks."""

import torch

from engine.cache import OutputCache
from engine.sizing import value_nbytes
from tests.support.engine_fixtures import calls, make_runtime, node, run


def states(outcome):
    return {n: r["state"] for n, r in outcome.run_report.items()}


def chain(value=1, b=2):
    return {"1": node("TestIntConstant", value=value), "2": node("TestAdd", a=["1", 0], b=b),
            "3": node("TestOutput", value=["2", 0])}


def test_full_cache_runs_nothing_on_an_identical_prompt(runtime):
    run(runtime, chain())
    calls().clear()
    outcome, events = run(runtime, chain())
    assert calls() == []
    assert set(states(outcome).values()) == {"cached"}
    assert sorted(events.named("execution_cached")[0]["nodes"]) == ["1", "2", "3"]
    assert not events.named("executing")


def test_partial_cache_reruns_only_the_changed_node_and_descendants(runtime):
    run(runtime, chain(b=2))
    outcome, _ = run(runtime, chain(b=5))
    assert states(outcome) == {"1": "cached", "2": "ran", "3": "ran"}
    assert outcome.run_report["2"]["reason"] == "input b changed"
    assert outcome.run_report["3"]["reason"] == "input value changed"


def test_switching_a_b_a_recomputes_nothing_of_a(runtime):
    run(runtime, chain(value=1))
    run(runtime, chain(value=2))
    calls().clear()
    outcome, _ = run(runtime, chain(value=1))
    assert calls() == [] and set(states(outcome).values()) == {"cached"}
    assert outcome.outputs == {"3": {"values": [3]}}


def test_renumbering_nodes_keeps_the_cache(runtime):
    run(runtime, chain())
    renumbered = {"10": node("TestIntConstant", value=1), "20": node("TestAdd", a=["10", 0], b=2),
                  "30": node("TestOutput", value=["20", 0])}
    calls().clear()
    outcome, _ = run(runtime, renumbered)
    assert calls() == [] and set(states(outcome).values()) == {"cached"}


def test_identical_subgraphs_run_once(runtime):
    prompt = {"1": node("TestIntConstant", value=3), "2": node("TestIntConstant", value=3),
              "3": node("TestAdd", a=["1", 0], b=1), "4": node("TestAdd", a=["2", 0], b=1),
              "5": node("TestOutput", value=["3", 0]), "6": node("TestOutput", value=["4", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.outputs == {"5": {"values": [4]}, "6": {"values": [4]}}
    assert [c for c in calls() if c[0] == "TestAdd"] == [("TestAdd", (3, 1))]
    assert sorted(states(outcome).values()).count("cached") >= 2


def test_dedup_works_even_with_the_cache_disabled(tmp_path):
    runtime = make_runtime(tmp_path, cache_none=True, cache_ram_gb=None)
    calls().clear()
    prompt = {"1": node("TestIntConstant", value=3), "2": node("TestIntConstant", value=3),
              "3": node("TestOutput", value=["1", 0]), "4": node("TestOutput", value=["2", 0])}
    run(runtime, prompt)
    assert calls().count(("TestIntConstant", 3)) == 1
    calls().clear()
    outcome, _ = run(runtime, prompt)
    assert calls().count(("TestIntConstant", 3)) == 1  # nothing kept between prompts
    reasons = sorted(outcome.run_report[n]["reason"] for n in ("1", "2"))
    assert reasons == ["cache disabled", "cached"]


def test_not_idempotent_nodes_are_not_deduplicated(runtime):
    prompt = {"1": node("TestNotIdempotent", value=3), "2": node("TestNotIdempotent", value=3),
              "3": node("TestOutput", value=["1", 0]), "4": node("TestOutput", value=["2", 0])}
    run(runtime, prompt)
    assert calls().count(("TestNotIdempotent", 3)) == 2
    calls().clear()
    run(runtime, prompt)
    assert calls().count(("TestNotIdempotent", 3)) == 0  # still cached per node id across prompts


def test_is_changed_result_controls_reruns(runtime):
    prompt = {"1": node("TestIsChanged", value=1, token="a"), "2": node("TestOutput", value=["1", 0])}
    run(runtime, prompt)
    outcome, _ = run(runtime, prompt)
    assert states(outcome)["1"] == "cached"
    prompt["1"]["inputs"]["token"] = "b"
    outcome, _ = run(runtime, prompt)
    assert states(outcome)["1"] == "ran"
    assert outcome.run_report["1"]["reason"] == "IS_CHANGED changed"


def test_is_changed_nan_always_reruns(runtime):
    prompt = {"1": node("TestIsChanged", value=1, token="nan"), "2": node("TestOutput", value=["1", 0])}
    run(runtime, prompt)
    outcome, _ = run(runtime, prompt)
    assert states(outcome) == {"1": "ran", "2": "ran"}


def test_is_changed_sees_linked_inputs_as_none(runtime):
    prompt = {"1": node("TestIntConstant", value=4), "2": node("TestIsChangedNoValue", value=["1", 0]),
              "3": node("TestOutput", value=["2", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok and outcome.outputs["3"] == {"values": [4]}


def test_run_reasons_new_and_forced(runtime):
    outcome, _ = run(runtime, chain())
    assert {r["reason"] for r in outcome.run_report.values()} == {"new"}
    outcome, events = run(runtime, chain(), force=True)
    assert states(outcome) == {"1": "ran", "2": "ran", "3": "ran"}
    assert {r["reason"] for r in outcome.run_report.values()} == {"forced"}
    assert [e["reason"] for e in events.named("lg.node_report")] == ["forced"] * 3


def test_force_via_extra_data(runtime):
    run(runtime, chain())
    outcome, _ = run(runtime, chain(), extra_data={"force": True})
    assert set(states(outcome).values()) == {"ran"}


def test_force_one_node_reruns_it_and_its_descendants(runtime):
    run(runtime, chain())
    outcome, _ = run(runtime, chain(), extra_data={"force_nodes": ["2"]})
    assert states(outcome) == {"1": "cached", "2": "ran", "3": "ran"}
    assert outcome.run_report["2"]["reason"] == "forced"


def test_cached_output_node_resends_its_ui(runtime):
    run(runtime, chain())
    outcome, events = run(runtime, chain())
    assert events.named("executed") == [{"node": "3", "display_node": "3", "output": {"values": [3]},
                                         "prompt_id": outcome.prompt_id}]
    assert outcome.outputs == {"3": {"values": [3]}}


def test_lru_eviction_under_the_byte_budget(tmp_path):
    runtime = make_runtime(tmp_path, cache_ram_gb=(8 * 8 * 3 * 4 * 2.5) / 1024 ** 3)
    calls().clear()

    def image_prompt(value):
        return {"1": node("TestImage", width=8, height=8, value=value), "2": node("TestOutput", value=["1", 0])}

    for value in (0.1, 0.2, 0.3):
        run(runtime, image_prompt(value))
    assert runtime.cache.evictions >= 1
    assert runtime.cache.total_bytes <= runtime.cache.budget_bytes
    outcome, _ = run(runtime, image_prompt(0.3))
    assert states(outcome)["1"] == "cached"  # most recent survives
    outcome, _ = run(runtime, image_prompt(0.1))
    assert states(outcome)["1"] == "ran"  # oldest was evicted
    assert outcome.run_report["1"]["reason"] in ("input value changed", "evicted from cache")


def test_evicted_entry_reason_is_reported(tmp_path):
    runtime = make_runtime(tmp_path)
    run(runtime, chain())
    runtime.cache.clear()
    outcome, _ = run(runtime, chain())
    assert outcome.run_report["1"] == {"state": "ran", "reason": "evicted from cache"}


def test_entries_know_their_byte_size():
    tensor = torch.zeros(10, 10, dtype=torch.float32)

    class Model:
        def cache_size_bytes(self):
            return 12345

    assert value_nbytes([[tensor]]) >= 400
    assert value_nbytes([[tensor, tensor]]) < 2 * 400 + 200  # shared storage counts once
    assert value_nbytes({"samples": tensor, "model": Model()}) >= 400 + 12345
    cache = OutputCache(budget_bytes=10_000)
    entry = cache.put(1, [[Model()]], None)
    assert entry.size >= 12345 and len(cache) == 0  # bigger than the budget: not kept


def test_what_several_entries_hold_counts_once_while_any_holds_it():
    class Network:
        pass

    class Handle:  # like ModelHandle: clones share one network
        def __init__(self, network):
            self.network = network

        def cache_size_bytes(self):
            return 1000 + 10  # the network, and a little of its own

        def cache_shared_parts(self):
            return [(self.network, 1000)]

    network = Network()
    base, clone = Handle(network), Handle(network)
    tensor = torch.zeros(100, dtype=torch.float32)  # a 400-byte storage
    cache = OutputCache()
    first = cache.put(1, [[base], [tensor]], None)
    alone = cache.total_bytes
    assert first.size == alone and alone >= 1010 + 400
    second = cache.put(2, [[clone], [tensor[:50]]], None)  # same network, a view of the same storage
    assert second.size >= 1010 + 400  # sized alone, it holds both
    assert cache.total_bytes == alone + second.own_bytes + 10  # but the cache counts them once
    third = cache.put(3, [[base]], None)  # the very same object again
    assert cache.total_bytes == alone + second.own_bytes + 10 + third.own_bytes
    cache.discard(1)
    cache.discard(3)
    assert cache.total_bytes == second.size  # the last holder still counts the shared parts
    cache.discard(2)
    assert cache.total_bytes == 0


def test_eviction_under_the_budget_frees_shared_parts_with_their_last_holder():
    class Model:
        def __init__(self, network):
            self.network = network

        def cache_size_bytes(self):
            return 5000

        def cache_shared_parts(self):
            return [(self.network, 5000)]

    network = object()
    cache = OutputCache(budget_bytes=6000)
    cache.put(1, [[Model(network)]], None)
    cache.put(2, [[Model(network)]], None)  # a clone: fits, since the network counts once
    assert len(cache) == 2 and cache.total_bytes < 6000
    cache.put(3, [[Model(object())]], None)  # another network: the oldest entries make room
    assert cache.get(3) is not None and cache.get(1) is None and cache.get(2) is None
    assert cache.total_bytes == cache.get(3).size


def test_mutation_check_catches_a_node_changing_its_input(tmp_path):
    runtime = make_runtime(tmp_path, debug_mutation_check=True)
    prompt = {"1": node("TestImage", width=2, height=2, value=0.5), "2": node("TestMutateImage", image=["1", 0]),
              "3": node("TestOutput", value=["2", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.status == "error"
    assert outcome.error["exception_type"] == "engine.errors.InputMutationError"
    assert "image" in outcome.error["exception_message"]
    # the corrupted source value was dropped from the cache
    prompt["2"] = node("TestOutput", value=["1", 0])
    outcome, _ = run(runtime, {"1": prompt["1"], "2": prompt["2"]})
    assert outcome.run_report["1"]["state"] == "ran"


def test_without_the_debug_flag_mutation_goes_unnoticed(runtime):
    prompt = {"1": node("TestImage", width=2, height=2, value=0.5), "2": node("TestMutateImage", image=["1", 0]),
              "3": node("TestOutput", value=["2", 0])}
    outcome, _ = run(runtime, prompt)
    assert outcome.ok


def test_cache_keys_are_content_based_and_type_exact():
    from engine import cachekeys

    table = cachekeys.KeyTable()

    def key(*parts):
        return table.key(cachekeys.serialize(tuple(cachekeys.canonical(p) for p in parts)))

    assert key("hello world") == key("".join(["hello ", "world"]))  # equal values, distinct objects
    assert len({key(1), key(1.0), key(True), key("1")}) == 4  # equal in Python, distinct inputs
    assert key(0.0) != key(-0.0) and key(None) != key("None") and key((1, 2)) != key(1, 2)
    assert key([1, 2]) == key((1, 2)) and key({"a": 1, "b": 2}) == key({"b": 2, "a": 1})
    assert key({"a": 1}) != key([("a", 1)])
    assert cachekeys.is_changed_token(float("nan")) != cachekeys.is_changed_token(float("nan"))


def test_key_table_forgets_unused_material_and_never_reuses_an_id():
    from engine import cachekeys

    forgotten: list[int] = []
    table = cachekeys.KeyTable(generation=3, on_forget=forgotten.extend)

    def key(*material):
        return table.key(cachekeys.serialize(material))

    first = [key("node", i) for i in range(3)]  # fills a generation: it becomes the previous one
    assert key("node", 0) == first[0]  # still known, and moved to the current generation
    later = [key("other", i) for i in range(2)]  # the current generation fills: rotation
    assert sorted(forgotten) == sorted(first[1:])  # unseen for a whole generation
    assert key("node", 1) not in first + later  # forgotten material gets a fresh id
    assert key("node", 0) == first[0]


def test_the_cache_drops_entries_whose_keys_were_forgotten():
    from engine import cachekeys

    cache = OutputCache()
    cache.keys.generation = 2
    old = cache.keys.key(cachekeys.serialize(("old",)))
    cache.put(old, [[1]], None)
    for i in range(4):
        cache.put(cache.keys.key(cachekeys.serialize(("new", i))), [[i]], None)
    assert cache.get(old) is None and len(cache) < 5
    assert cache.total_bytes == sum(entry.size for entry in cache._entries.values())


def test_a_dropped_cache_frees_its_values_without_the_garbage_collector():
    import gc
    import weakref

    class Value:
        pass

    cache = OutputCache()
    value = Value()
    cache.put(cache.keys.key(b"material"), [[value]], None)
    alive = weakref.ref(value)
    del value
    gc.disable()
    try:
        del cache
        assert alive() is None  # freed by reference counting: no cycle held it
    finally:
        gc.enable()


def test_cache_none_frees_values_once_their_consumers_ran(tmp_path):
    import weakref

    refs = []

    class Keep:
        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        def run(self, image):
            refs.append(weakref.ref(image))
            return (image + 0,)

    class Check:
        RETURN_TYPES = ("BOOLEAN",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        def run(self, image):
            return (refs[0]() is None,)

    outcomes = []
    for cache_none in (True, False):
        refs.clear()
        runtime = make_runtime(tmp_path / str(cache_none), cache_none=cache_none,
                               **({"cache_ram_gb": None} if cache_none else {}))
        runtime.registry.register("Keep", Keep)
        runtime.registry.register("Check", Check)
        prompt = {"1": node("TestImage", width=4, height=4, value=0.5), "2": node("Keep", image=["1", 0]),
                  "3": node("Check", image=["2", 0]), "4": node("TestOutput", value=["3", 0])}
        outcome, _ = run(runtime, prompt)
        outcomes.append(outcome.outputs["4"]["values"][0])
    assert outcomes == [True, False]  # freed early without a cache; kept (cached) with one
