"""Why a node re-ran, worded from its fingerprint and the one its id had last time."""

from engine import cachekeys
from engine.rerun import reason, remember


def fingerprint(class_type="KSampler", changed=None, **inputs):
    return cachekeys.serialize((class_type, None, changed, tuple(inputs.items())))


def test_a_forced_node_says_so_whatever_changed():
    assert reason(fingerprint(seed=1), fingerprint(seed=2), forced=True, cache_enabled=True) == "forced"


def test_a_node_id_never_seen_or_of_another_class_is_new():
    assert reason(None, fingerprint(seed=1), False, True) == "new"
    assert reason(fingerprint("VAEDecode"), fingerprint(seed=1), False, True) == "new"


def test_the_inputs_that_changed_are_named():
    before = fingerprint(seed=1, steps=20, cfg=7.0)
    assert reason(before, fingerprint(seed=2, steps=20, cfg=7.5), False, True) == "input seed, cfg changed"
    assert reason(before, fingerprint(seed=1, steps=20), False, True) == "input cfg changed"  # removed


def test_a_changed_is_changed_answer_is_the_reason():
    assert reason(fingerprint(changed="a", seed=1), fingerprint(changed="b", seed=1), False, True) == \
        "IS_CHANGED changed"


def test_the_same_fingerprint_means_the_value_left_the_cache():
    assert reason(fingerprint(seed=1), fingerprint(seed=1), False, True) == "evicted from cache"
    assert reason(fingerprint(seed=1), fingerprint(seed=1), False, False) == "cache disabled"


def test_memory_keeps_the_newest_node_ids():
    memory = {}
    remember(memory, {"1": b"a", "2": b"b"}, limit=3)
    remember(memory, {"3": b"c", "4": b"d"}, limit=3)
    assert memory == {"2": b"b", "3": b"c", "4": b"d"}
