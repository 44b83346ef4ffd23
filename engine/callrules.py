"""ComfyUI's rules for calling a node: inputs as lists, one call per list index, results merged
per output slot, blockers passed on instead of calling.

Plain functions over plain values, so each rule reads and tests on its own; the executor
supplies the node's validated inputs and its sources' results.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
from typing import Any, Callable, Iterable, Iterator, Mapping

from engine import cachekeys
from engine.blocker import ExecutionBlocker
from engine.errors import InterruptedByUser, NodeOutputError
from engine.interrupt import InterruptFlag
from engine.nodedef import NodeDefinition, OutputSpec

log = logging.getLogger(__name__)

Outputs = list[list[Any]]  # a node's results: one list of values per output slot


def hidden_values(hidden: Mapping[str, str], node_id: str, prompt: Any,
                  extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """The hidden inputs a node declares, by kind; DYNPROMPT and unknown kinds are None (we have
    no dynamic prompt object)."""
    if not hidden:
        return {}
    known = {"PROMPT": prompt, "UNIQUE_ID": node_id,
             "EXTRA_PNGINFO": extra_data.get("extra_pnginfo"),
             "AUTH_TOKEN_COMFY_ORG": extra_data.get("auth_token_comfy_org"),
             "API_KEY_COMFY_ORG": extra_data.get("api_key_comfy_org")}
    return {name: known.get(kind) for name, kind in hidden.items()}


def gather(declared: Iterable[str], inputs: Mapping[str, Any],
           outputs_of: Callable[[str], Outputs | None], hidden: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each present declared input as a list: a constant is one value, a link [source id, slot]
    is that slot's list ([None] while the source is unevaluated, behind a lazy input), and each
    hidden value is one value."""
    data: dict[str, list[Any]] = {}
    for name in declared:
        if name not in inputs:
            continue
        value = inputs[name]
        if type(value) is list:  # validation leaves lists only as links
            outputs = outputs_of(value[0])
            data[name] = outputs[value[1]] if outputs is not None else [None]
        else:
            data[name] = [value]
    for name, value in hidden.items():
        data[name] = [value]
    return data


def first_blocker(values: Iterable[Any]) -> ExecutionBlocker | None:
    return next((value for value in values if type(value) is ExecutionBlocker), None)


def has_blocker(outputs: Outputs) -> bool:
    return first_blocker(value for slot in outputs for value in slot) is not None


def call_mapped(method: Callable[..., Any], inputs: Mapping[str, list[Any]], input_is_list: bool,
                interrupt: InterruptFlag | None = None,
                on_blocked: Callable[[ExecutionBlocker], Any] | None = None) -> list[Any]:
    """Call `method` once per list index (a shorter list repeats its last value; an empty one
    means no call at all), or once with the whole lists for INPUT_IS_LIST; returns each call's
    result. With `on_blocked`, a call whose arguments hold a blocker is not made: its result is
    `on_blocked(blocker)`. Without it (check_lazy_status), blockers are plain values."""
    if input_is_list:
        calls = [dict(inputs)]
    elif any(not values for values in inputs.values()):
        return []
    else:
        count = max((len(values) for values in inputs.values()), default=1)
        calls = [{name: values[min(index, len(values) - 1)] for name, values in inputs.items()}
                 for index in range(count)]
    results: list[Any] = []
    for args in calls:
        if interrupt is not None and interrupt.is_set():
            raise InterruptedByUser("interrupted")
        if on_blocked is not None:
            arguments = ([v for whole in args.values() for v in whole] if input_is_list
                         else list(args.values()))
            blocker = first_blocker(arguments)
            if blocker is not None:
                results.append(on_blocked(blocker))
                continue
        results.append(finish_coroutine(method(**args)))
    return results


def finish_coroutine(result: Any) -> Any:
    """Run an `async def` node function's coroutine to its end on this (worker) thread."""
    if not inspect.iscoroutine(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(result)
    result.close()
    raise NodeOutputError("async nodes cannot run while an event loop is running in the executing thread")


def merge(returns: list[Any], outputs: tuple[OutputSpec, ...], label: str) -> tuple[Outputs, dict[str, Any] | None]:
    """Per-call results -> one list per output slot (an OUTPUT_IS_LIST slot concatenates each
    call's list), and the calls' ui dicts merged (lists concatenated). `label` names the node
    in errors."""
    n_out = len(outputs)
    tuples: list[Any] = []
    uis: list[dict[str, Any]] = []
    for value in returns:
        if type(value) is ExecutionBlocker:
            tuples.append((value,) * n_out)
            continue
        if isinstance(value, dict):
            if "expand" in value:
                raise NodeOutputError(f"{label} returned a graph to expand; node expansion is not supported")
            if value.get("ui") is not None:
                uis.append(value["ui"])
            value = value.get("result", ())
        if value is None:
            value = ()
        if not isinstance(value, (tuple, list)):
            raise NodeOutputError(f"{label} returned {type(value).__name__}; "
                                  "a node returns a tuple or a dict with 'ui'/'result'")
        if len(value) < n_out:
            raise NodeOutputError(f"{label} returned {len(value)} values but RETURN_TYPES declares {n_out}")
        tuples.append(value)
    merged: Outputs = []
    for slot, spec in enumerate(outputs):
        if not spec.is_list:
            merged.append([value[slot] for value in tuples])
            continue
        items: list[Any] = []
        for value in tuples:
            item = value[slot]
            if type(item) is ExecutionBlocker:
                items.append(item)
            else:
                items.extend(item)
        merged.append(items)
    return merged, _merge_ui(uis)


def _merge_ui(uis: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not uis:
        return None
    ui: dict[str, Any] = {}
    for part in uis:
        for key, value in part.items():
            if isinstance(value, list) and isinstance(ui.get(key), list):
                ui[key] = ui[key] + value
            else:
                ui[key] = list(value) if isinstance(value, list) else value
    return ui


def is_changed(definition: NodeDefinition, inputs: Mapping[str, Any], hidden: Mapping[str, Any],
               node_id: str) -> Any:
    """The node's IS_CHANGED answer as a cache-key token. IS_CHANGED gets the constant inputs
    (linked ones are None); an answer we cannot compare, or an exception, means "re-run"."""
    spec = definition.is_changed
    assert spec is not None
    values = {name: None if type(inputs[name]) is list else inputs[name]
              for name in definition.inputs if name in inputs}
    values.update(hidden)
    try:
        return cachekeys.is_changed_token(definition.node_class.IS_CHANGED(**spec.filter(values)))
    except cachekeys.Uncacheable:
        return cachekeys.never_equal()
    except Exception:
        log.warning("IS_CHANGED of node %s (%s) raised; it will re-run", node_id, definition.name,
                    exc_info=True)
        return cachekeys.never_equal()


def lazy_sources(answers: Iterable[Any], inputs: Mapping[str, Any]) -> list[str]:
    """The ids of the sources linked to the inputs that check_lazy_status asked for (each call
    answers a name, a list of names, or nothing), each id once."""
    names: list[str] = []
    for answer in answers:
        if answer:
            names.extend([answer] if isinstance(answer, str) else answer)
    ids: list[str] = []
    for name in dict.fromkeys(names):
        value = inputs.get(name)
        if type(value) is list and value[0] not in ids:
            ids.append(value[0])
    return ids


@contextlib.contextmanager
def inference_mode() -> Iterator[None]:
    """torch.inference_mode around node calls, without importing torch for torch-free graphs."""
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811
        except ImportError:  # pragma: no cover - torch is a hard requirement of the app
            yield
            return
    with torch.inference_mode():
        yield
