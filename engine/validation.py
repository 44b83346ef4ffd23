"""Whole-prompt validation before anything runs, with ComfyUI's error-object shapes.

Checks: unknown class, missing required input, bad link (shape, unknown node, slot out of
range), type mismatch ("*" and comma unions), value coercion (INT/FLOAT/STRING/BOOLEAN; NaN
and infinity are refused, so "1e999" never reaches a node as infinity), min/max, combo
membership for both combo spellings (ComfyUI skips the ("COMBO", {"options"}) form; we do
not), custom VALIDATE_INPUTS, and dependency cycles. Outputs that fail are dropped
and the valid ones still run; an error is reported on the node that has it, with the outputs
that depend on it, never on nodes that are only invalid because of an upstream failure.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine.errors import NodeRegistrationError
from engine.nodedef import InputSpec, NodeDefinition
from engine.registry import NodeRegistry
from engine.typematch import types_compatible

_MISSING = object()
_ON_PATH = object()  # _walk's mark for a node on the current DFS path
_COMBO_LIST_LIMIT = 20


@dataclass
class ValidationResult:
    ok: bool
    error: dict[str, Any] | None
    good_outputs: list[str]
    node_errors: dict[str, dict[str, Any]]
    # a copy of the prompt (node and inputs dicts) with coerced values and normalised links
    prompt: dict[str, dict[str, Any]] = field(default_factory=dict)
    definitions: dict[str, NodeDefinition] = field(default_factory=dict)  # class_type -> definition
    order: list[str] = field(default_factory=list)  # valid nodes, every node after its sources

    def as_tuple(self) -> tuple[bool, dict | None, list[str], dict]:
        """ComfyUI's `(ok, error, good_outputs, node_errors)`."""
        return self.ok, self.error, self.good_outputs, self.node_errors


def _error(kind: str, message: str, details: str = "", extra_info: dict | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


def _fail(kind: str, message: str, details: str = "") -> ValidationResult:
    return ValidationResult(False, _error(kind, message, details), [], {})


# ---- coercion ---------------------------------------------------------------------------
def _finite(value: float) -> float:
    """Refuse NaN and ±infinity: JSON's 1e999 or "inf" would otherwise reach nodes as infinity."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number (NaN and infinity are not allowed)")
    return value


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        _finite(value)
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return _to_int(float(text))
    raise TypeError(f"cannot convert {type(value).__name__} to INT")


def _to_float(value: Any) -> float:
    if type(value) is float:
        return _finite(value)
    if isinstance(value, (int, float, str)):
        return _finite(float(value))
    raise TypeError(f"cannot convert {type(value).__name__} to FLOAT")


def _to_str(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise TypeError(f"cannot convert {type(value).__name__} to STRING")


def _to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{value!r} is not a boolean")


_COERCE = {"INT": _to_int, "FLOAT": _to_float, "STRING": _to_str, "BOOLEAN": _to_bool}


def _input_config(spec: InputSpec) -> list[Any]:
    return [spec.raw[0] if isinstance(spec.raw, list) and spec.raw else spec.type, dict(spec.options)]


# ---- the normalised prompt ------------------------------------------------------------------
def _plain_node(node: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A new node dict in the normalised shape, with the given inputs."""
    entry = {"class_type": node["class_type"], "inputs": inputs}
    if "_meta" in node:
        entry["_meta"] = node["_meta"]
    return entry


# ---- per-node checks ----------------------------------------------------------------------
class _Checker:
    """Checks nodes one at a time, recording each node's errors and the nodes it links to.

    `prompt` is validation's own copy (node and inputs dicts), so normalised values are written
    into it without touching the caller's prompt.
    """

    def __init__(self, prompt: dict[str, dict[str, Any]], node_defs: dict[str, NodeDefinition]):
        self.prompt = prompt
        self.node_defs = node_defs  # node id -> its definition
        self.errors: dict[str, list[dict[str, Any]]] = {}  # only nodes that have errors
        self.deps: dict[str, list[str]] = {}

    def check(self, node_id: str) -> list[str]:
        """Check one node's own inputs (called once per node); returns the ids it links to."""
        inputs = self.prompt[node_id]["inputs"]
        definition = self.node_defs[node_id]
        errors: list[dict[str, Any]] = []
        deps: list[str] = []
        validator = definition.validate_inputs
        skip_type_check = validator is not None and "input_types" in validator.params
        linked_types: dict[str, str] = {}
        for name, spec in definition.inputs.items():
            value = inputs.get(name, _MISSING)
            if value is _MISSING:
                if spec.required:
                    errors.append(_error("required_input_missing", "Required input is missing", name,
                                         {"input_name": name}))
            elif type(value) is list:
                source = self._check_link(node_id, name, spec, value, errors, skip_type_check)
                if source is not None:
                    deps.append(source[0])
                    linked_types[name] = source[1]
            else:
                self._check_constant(node_id, name, spec, value, errors, validator)
        if validator is not None and not errors:
            self._run_validator(node_id, definition, inputs, linked_types, errors)
        if errors:
            self.errors[node_id] = errors
        self.deps[node_id] = deps
        return deps

    def _check_link(self, node_id: str, name: str, spec: InputSpec, value: list, errors: list,
                    skip_type_check: bool) -> tuple[str, str] | None:
        if len(value) == 2 and type(value[0]) is str and type(value[1]) is int:
            source_id, slot = value  # the usual, already normalised form
        else:
            source_id, slot = value if len(value) == 2 else (None, None)
            well_formed = (isinstance(source_id, (str, int)) and not isinstance(source_id, bool)
                           and isinstance(slot, (int, float)) and not isinstance(slot, bool)
                           and float(slot).is_integer())
            if not well_formed:
                errors.append(_error("bad_linked_input",
                                     "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
                                     {"input_name": name, "input_config": _input_config(spec),
                                      "received_value": value}))
                return None
            source_id, slot = str(source_id), int(slot)
        source = self.prompt.get(source_id)
        if source is None:
            errors.append(_error("bad_linked_input", "Linked node does not exist",
                                 f"{name}: node {source_id!r} is not in the prompt",
                                 {"input_name": name, "input_config": _input_config(spec),
                                  "received_value": value}))
            return None
        source_def = self.node_defs[source_id]
        if not 0 <= slot < len(source_def.outputs):
            errors.append(_error("bad_linked_input", "Linked output slot out of range",
                                 f"{name}: node {source_id} ({source_def.name}) has "
                                 f"{len(source_def.outputs)} outputs, slot {slot} requested",
                                 {"input_name": name, "input_config": _input_config(spec), "received_value": value}))
            return None
        received = source_def.outputs[slot].type
        if not skip_type_check and not types_compatible(received, spec.type):
            errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                 f"{name}, received_type({received}) mismatch input_type({spec.type})",
                                 {"input_name": name, "input_config": _input_config(spec), "received_type": received,
                                  "linked_node": value}))
            return None
        if value[0] is not source_id or value[1] is not slot:
            self.prompt[node_id]["inputs"][name] = [source_id, slot]
        return source_id, received

    def _check_constant(self, node_id: str, name: str, spec: InputSpec, value: Any, errors: list,
                        validator: Any) -> None:
        if type(value) is dict and "__value__" in value:
            value = value["__value__"]
            self.prompt[node_id]["inputs"][name] = value
        coerce = _COERCE.get(spec.type)
        if coerce is not None:
            try:
                coerced = coerce(value)
            except (TypeError, ValueError, OverflowError) as exc:
                errors.append(_error("invalid_input_type",
                                     f"Failed to convert an input value to a {spec.type} value",
                                     f"{name}, {value}, {exc}",
                                     {"input_name": name, "input_config": _input_config(spec),
                                      "received_value": value, "exception_message": str(exc)}))
                return
            if coerced is not value:
                self.prompt[node_id]["inputs"][name] = coerced
                value = coerced
        if validator is not None and validator.accepts(name):
            return  # the node's own VALIDATE_INPUTS owns this input (ComfyUI rule)
        options = spec.options
        if options and spec.type in ("INT", "FLOAT"):
            low, high = options.get("min"), options.get("max")
            if low is not None and value < low:
                errors.append(_error("value_smaller_than_min", f"Value {value} smaller than min of {low}",
                                     name, {"input_name": name, "input_config": _input_config(spec),
                                            "received_value": value}))
            elif high is not None and value > high:
                errors.append(_error("value_bigger_than_max", f"Value {value} bigger than max of {high}",
                                     name, {"input_name": name, "input_config": _input_config(spec),
                                            "received_value": value}))
        choices = spec.choices
        if choices is not None and not spec.multi_select:
            try:
                present = value in choices
            except TypeError:
                present = False
            if not present:
                if len(choices) > _COMBO_LIST_LIMIT:
                    list_info, config = f"(list of length {len(choices)})", None
                else:
                    list_info, config = str(list(choices)), _input_config(spec)
                errors.append(_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {list_info}",
                                     {"input_name": name, "input_config": config, "received_value": value}))

    def _run_validator(self, node_id: str, definition: NodeDefinition, inputs: dict[str, Any],
                       linked_types: dict[str, str], errors: list) -> None:
        spec = definition.validate_inputs
        assert spec is not None
        values: dict[str, Any] = {}
        for name in definition.inputs:
            if name in inputs:
                values[name] = None if name in linked_types else inputs[name]
        for name, kind in definition.hidden.items():
            if kind == "UNIQUE_ID":
                values[name] = node_id
            elif kind == "PROMPT":
                values[name] = self.prompt
        call_args = spec.filter(values)
        if "input_types" in spec.params:
            call_args["input_types"] = dict(linked_types)
        try:
            result = definition.node_class.VALIDATE_INPUTS(**call_args)
        except Exception as exc:
            errors.append(_error("exception_during_validation", "Exception when validating node", str(exc),
                                 {"exception_type": f"{type(exc).__module__}.{type(exc).__name__}",
                                  "traceback": traceback.format_tb(exc.__traceback__)}))
            return
        if result is True:
            return
        names = [n for n in call_args if n != "input_types"] or [None]
        for name in names:
            details = f"{name}" if name is not None else definition.name
            if result is not False and result is not None:
                details += f" - {result}"
            errors.append(_error("custom_validation_failed", "Custom validation failed for node", details,
                                 {"input_name": name}))


# ---- whole prompt ---------------------------------------------------------------------------
def validate_prompt(prompt: Any, registry: NodeRegistry,
                    partial_targets: Iterable[str] | None = None) -> ValidationResult:
    """Validate an API prompt; `partial_targets` restricts which output nodes are considered."""
    if not isinstance(prompt, dict):
        return _fail("invalid_prompt", "Prompt must be an object mapping node ids to nodes",
                     f"got {type(prompt).__name__}")
    definitions: dict[str, NodeDefinition] = {}
    node_defs: dict[str, NodeDefinition] = {}
    copy: dict[str, dict[str, Any]] = {}
    outputs: list[str] = []
    for raw_id, node in prompt.items():
        node_id = raw_id if type(raw_id) is str else str(raw_id)
        if not isinstance(node, dict) or "class_type" not in node:
            return _fail("invalid_prompt",
                         "Cannot execute because a node is missing the class_type property.",
                         f"Node ID '#{node_id}'")
        class_type = node["class_type"]
        definition = definitions.get(class_type)
        if definition is None:
            if not isinstance(class_type, str) or class_type not in registry:
                return _fail("invalid_prompt", f"Cannot execute because node {class_type} does not exist.",
                             f"Node ID '#{node_id}'")
            try:
                definition = definitions[class_type] = registry.current(class_type)
            except NodeRegistrationError as exc:
                return _fail("invalid_prompt", f"Cannot execute because node {class_type} failed to load.",
                             f"Node ID '#{node_id}': {exc}")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            return _fail("invalid_prompt", "Cannot execute because a node's inputs are not an object.",
                         f"Node ID '#{node_id}'")
        copy[node_id] = _plain_node(node, dict(inputs))
        node_defs[node_id] = definition
        if definition.output_node:
            outputs.append(node_id)

    if partial_targets is not None:
        targets = {str(t) for t in partial_targets}
        outputs = [nid for nid in outputs if nid in targets]
    if not outputs:
        result = _fail("prompt_no_outputs", "Prompt has no outputs")
        result.prompt, result.definitions = copy, definitions
        return result

    checker = _Checker(copy, node_defs)
    valid, order, cycles = _walk(outputs, checker)
    for cycle in cycles:
        details = " -> ".join(cycle + cycle[:1])
        for node_id in cycle:
            checker.errors.setdefault(node_id, []).append(
                _error("dependency_cycle", "Dependency cycle detected", details, {"cycle": list(cycle)}))
    good_outputs = [o for o in outputs if valid[o]]
    node_errors: dict[str, dict[str, Any]] = {}
    if len(good_outputs) < len(outputs):
        for output in outputs:
            if valid[output]:
                continue
            for failing in _failing_ancestors(output, checker):
                entry = node_errors.setdefault(failing, {"errors": checker.errors[failing], "dependent_outputs": [],
                                                         "class_type": copy[failing]["class_type"]})
                entry["dependent_outputs"].append(output)
    result = ValidationResult(True, None, good_outputs, node_errors, copy, definitions,
                              [n for n in order if valid[n]])
    if not good_outputs:
        lines = [f"{e['message']}: {e['details']}" for entry in node_errors.values() for e in entry["errors"]]
        result.ok = False
        result.error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                              "\n".join(lines))
    return result


def _walk(outputs: list[str], checker: _Checker) -> tuple[dict[str, bool], list[str], list[list[str]]]:
    """Iterative post-order DFS from the outputs (deep chains are fine): each node's validity,
    a topological order and the cycles found."""
    state: dict[str, Any] = {}  # absent: not reached; _ON_PATH: on the DFS path; True: finished
    order: list[str] = []
    cycles: list[list[str]] = []
    in_cycle: set[str] = set()
    for output in outputs:
        if output in state:
            continue
        state[output] = _ON_PATH
        path = [output]
        sources = [iter(checker.check(output))]
        while path:
            for source in sources[-1]:
                seen = state.get(source)
                if seen is None:
                    state[source] = _ON_PATH
                    path.append(source)
                    sources.append(iter(checker.check(source)))
                    break
                if seen is _ON_PATH:
                    cycle = path[path.index(source):]
                    if not in_cycle.issuperset(cycle):
                        cycles.append(cycle)
                        in_cycle.update(cycle)
            else:
                node_id = path.pop()
                sources.pop()
                state[node_id] = True
                order.append(node_id)
    return _validity(order, checker, in_cycle), order, cycles


def _validity(order: list[str], checker: _Checker, in_cycle: set[str]) -> dict[str, bool]:
    """Each node's validity: no errors of its own, not on a cycle, and every source valid.
    `order` lists sources first, except along a cycle, whose nodes are invalid anyway."""
    errors, deps = checker.errors, checker.deps
    valid: dict[str, bool] = {}
    for node_id in order:
        valid[node_id] = (node_id not in errors and node_id not in in_cycle
                          and all(valid.get(source, False) for source in deps[node_id]))
    return valid


def _failing_ancestors(output: str, checker: _Checker) -> list[str]:
    """Nodes with their own errors among `output` and its ancestors."""
    seen = {output}
    stack = [output]
    failing = []
    while stack:
        node_id = stack.pop()
        if checker.errors.get(node_id):
            failing.append(node_id)
        for source in checker.deps.get(node_id, ()):
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return failing
