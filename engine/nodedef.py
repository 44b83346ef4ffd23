"""The typed description of a node class, built once from ComfyUI's V1 class attributes.

Validation, scheduling, `/object_info` and the UI read a NodeDefinition; nothing else reads
INPUT_TYPES / RETURN_TYPES / OUTPUT_IS_LIST... from the class again. INPUT_TYPES is the one
attribute that may change at run time (file-list combos), so `refreshed()` re-reads it and
returns a new definition only when the answer changed.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

from engine.errors import NodeRegistrationError

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
HIDDEN_KINDS = frozenset({"PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID",
                          "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One required or optional input: its type, widget options and (for combos) choices."""

    name: str
    section: str  # "required" | "optional"
    type: str  # "COMBO" for both combo spellings
    options: Mapping[str, Any]
    choices: tuple[Any, ...] | None = None
    raw: Any = None  # the INPUT_TYPES entry as declared (JSON-ified), for object_info

    @property
    def required(self) -> bool:
        return self.section == "required"

    @property
    def lazy(self) -> bool:
        return bool(self.options.get("lazy", False))

    @property
    def force_input(self) -> bool:
        return bool(self.options.get("forceInput", False))

    @property
    def is_widget(self) -> bool:
        """Whether the editor shows a widget (and a workflow stores a widgets_values slot)."""
        return self.type in WIDGET_TYPES and not self.force_input

    @property
    def multi_select(self) -> bool:
        return bool(self.options.get("multi_select") or self.options.get("multiselect"))


@dataclass(frozen=True, slots=True)
class OutputSpec:
    type: str
    name: str
    is_list: bool
    tooltip: str | None = None
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Which keyword arguments a class hook (VALIDATE_INPUTS, IS_CHANGED) accepts."""

    params: frozenset[str]
    var_keyword: bool

    def accepts(self, name: str) -> bool:
        return self.var_keyword or name in self.params

    def filter(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if self.var_keyword:
            return dict(values)
        return {k: v for k, v in values.items() if k in self.params}


def _call_spec(func: Callable[..., Any]) -> CallSpec:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return CallSpec(frozenset(), True)
    params = frozenset(
        name for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    var_kw = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    return CallSpec(params, var_kw)


def jsonify(value: Any) -> Any:
    """Tuples become lists (recursively) so object_info matches ComfyUI's JSON exactly."""
    if isinstance(value, (list, tuple)):
        return [jsonify(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonify(v) for k, v in value.items()}
    return value


def _parse_input(node: str, section: str, name: str, spec: Any) -> InputSpec:
    if isinstance(spec, str):
        spec = (spec,)
    if not isinstance(spec, (list, tuple)) or not spec:
        raise NodeRegistrationError(
            f"{node}: input {name!r} must be a tuple (TYPE, options?), got {spec!r}")
    type_part = spec[0]
    options = spec[1] if len(spec) > 1 and spec[1] is not None else {}
    if not isinstance(options, dict):
        raise NodeRegistrationError(f"{node}: options of input {name!r} must be a dict")
    choices: tuple[Any, ...] | None = None
    if isinstance(type_part, (list, tuple)):
        type_name, choices = "COMBO", tuple(type_part)
    elif isinstance(type_part, str):
        type_name = type_part
        if type_name == "COMBO" and "options" in options:
            choices = tuple(options["options"])
    else:
        raise NodeRegistrationError(f"{node}: type of input {name!r} must be a string or a list")
    return InputSpec(name=name, section=section, type=type_name,
                     options=MappingProxyType(dict(options)), choices=choices, raw=jsonify(spec))


@dataclass(frozen=True)
class NodeDefinition:
    """Everything the engine and the UI need to know about one node type."""

    name: str
    node_class: type
    display_name: str
    category: str
    description: str
    python_module: str
    function: str
    inputs: Mapping[str, InputSpec]  # required then optional, in declaration order
    hidden: Mapping[str, str]  # input name -> PROMPT | EXTRA_PNGINFO | UNIQUE_ID | ...
    outputs: tuple[OutputSpec, ...]
    output_node: bool = False
    input_is_list: bool = False
    not_idempotent: bool = False
    deprecated: bool = False
    experimental: bool = False
    api_node: bool | None = None
    validate_inputs: CallSpec | None = None
    is_changed: CallSpec | None = None
    has_lazy_check: bool = False
    raw_input_types: Mapping[str, Any] = field(default_factory=dict)
    output_tooltips: tuple[str, ...] | None = None
    raw_outputs: tuple[Any, ...] = ()
    raw_output_names: tuple[Any, ...] = ()
    has_list_outputs: bool = False
    lazy_inputs: frozenset[str] = frozenset()  # lazy inputs, when the class has check_lazy_status
    has_unique_id: bool = False  # takes a hidden UNIQUE_ID: its output may depend on the node id

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_class(cls, name: str, node_class: type, display_name: str | None = None,
                   python_module: str | None = None) -> "NodeDefinition":
        """Read the V1 ABI once and return the typed description (raises NodeRegistrationError)."""
        if not isinstance(node_class, type):
            raise NodeRegistrationError(f"{name}: expected a class, got {node_class!r}")
        function = getattr(node_class, "FUNCTION", None)
        if not isinstance(function, str) or not callable(getattr(node_class, function, None)):
            raise NodeRegistrationError(f"{name}: FUNCTION must name a method of the class "
                                        f"(got {function!r})")
        return_types = getattr(node_class, "RETURN_TYPES", ())
        if isinstance(return_types, str) or not isinstance(return_types, (tuple, list)):
            raise NodeRegistrationError(f"{name}: RETURN_TYPES must be a tuple")
        return_names = getattr(node_class, "RETURN_NAMES", None) or tuple(return_types)
        is_list = tuple(getattr(node_class, "OUTPUT_IS_LIST", None) or ())
        is_list += (False,) * (len(return_types) - len(is_list))  # ComfyUI reads missing entries as False
        if len(return_names) != len(return_types) or len(is_list) != len(return_types):
            raise NodeRegistrationError(
                f"{name}: RETURN_NAMES/OUTPUT_IS_LIST must have one entry per RETURN_TYPES entry")
        tooltips = getattr(node_class, "OUTPUT_TOOLTIPS", None)
        outputs = []
        for i, rtype in enumerate(return_types):
            choices = tuple(rtype) if isinstance(rtype, (list, tuple)) else None
            type_name = "COMBO" if choices is not None else str(rtype)
            out_name = return_names[i]
            outputs.append(OutputSpec(
                type=type_name,
                name=out_name if isinstance(out_name, str) else type_name,
                is_list=bool(is_list[i]),
                tooltip=tooltips[i] if tooltips and i < len(tooltips) else None,
                choices=choices))
        validate = getattr(node_class, "VALIDATE_INPUTS", None)
        is_changed = getattr(node_class, "IS_CHANGED", None)
        api_node = getattr(node_class, "API_NODE", None)
        base = cls(
            name=name,
            node_class=node_class,
            display_name=display_name or name,
            category=str(getattr(node_class, "CATEGORY", "sd")),
            description=str(getattr(node_class, "DESCRIPTION", "") or ""),
            python_module=python_module or getattr(node_class, "RELATIVE_PYTHON_MODULE", None)
            or "custom_nodes.unknown",
            function=function,
            inputs=_EMPTY,
            hidden=_EMPTY,
            outputs=tuple(outputs),
            output_node=getattr(node_class, "OUTPUT_NODE", False) is True,
            input_is_list=bool(getattr(node_class, "INPUT_IS_LIST", False)),
            not_idempotent=bool(getattr(node_class, "NOT_IDEMPOTENT", False)),
            deprecated=bool(getattr(node_class, "DEPRECATED", False)),
            experimental=bool(getattr(node_class, "EXPERIMENTAL", False)),
            api_node=bool(api_node) if api_node is not None else None,
            validate_inputs=_call_spec(validate) if callable(validate) else None,
            is_changed=_call_spec(is_changed) if callable(is_changed) else None,
            has_lazy_check=callable(getattr(node_class, "check_lazy_status", None)),
            output_tooltips=tuple(tooltips) if tooltips else None,
            raw_outputs=tuple(jsonify(list(return_types))),
            raw_output_names=tuple(jsonify(list(return_names))),
            has_list_outputs=any(o.is_list for o in outputs),
        )
        return base._with_input_types(base._read_input_types())

    def _read_input_types(self) -> dict[str, Any]:
        getter = getattr(self.node_class, "INPUT_TYPES", None)
        if not callable(getter):
            raise NodeRegistrationError(f"{self.name}: INPUT_TYPES classmethod is missing")
        try:
            declared = getter()
        except Exception as exc:  # a pack's INPUT_TYPES may fail (missing folder, bug)
            raise NodeRegistrationError(f"{self.name}: INPUT_TYPES raised "
                                        f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(declared, dict):
            raise NodeRegistrationError(f"{self.name}: INPUT_TYPES must return a dict")
        return declared

    def _with_input_types(self, declared: dict[str, Any]) -> "NodeDefinition":
        inputs: dict[str, InputSpec] = {}
        for section in ("required", "optional"):
            entries = declared.get(section) or {}
            if not isinstance(entries, dict):
                raise NodeRegistrationError(f"{self.name}: INPUT_TYPES[{section!r}] must be a dict")
            for input_name, spec in entries.items():
                if input_name in inputs:
                    raise NodeRegistrationError(f"{self.name}: input {input_name!r} declared twice")
                inputs[input_name] = _parse_input(self.name, section, input_name, spec)
        hidden: dict[str, str] = {}
        for input_name, kind in (declared.get("hidden") or {}).items():
            kind_name = kind[0] if isinstance(kind, (list, tuple)) and kind else kind
            hidden[input_name] = str(kind_name)
        raw = {section: {k: jsonify(v) for k, v in (entries or {}).items()}
               for section, entries in declared.items() if isinstance(entries, dict)}
        lazy = frozenset(name for name, spec in inputs.items() if spec.lazy) if self.has_lazy_check else frozenset()
        return replace(self, inputs=MappingProxyType(inputs), hidden=MappingProxyType(hidden),
                       raw_input_types=raw, lazy_inputs=lazy,
                       has_unique_id="UNIQUE_ID" in hidden.values())

    def refreshed(self) -> "NodeDefinition":
        """Re-read INPUT_TYPES (file lists change); returns self when nothing changed."""
        declared = self._read_input_types()
        raw = {section: {k: jsonify(v) for k, v in (entries or {}).items()}
               for section, entries in declared.items() if isinstance(entries, dict)}
        if raw == self.raw_input_types:
            return self
        return self._with_input_types(declared)

    # ---- queries ------------------------------------------------------------------------
    def input_order(self) -> dict[str, list[str]]:
        return {section: list(entries) for section, entries in self.raw_input_types.items()}

    def widget_inputs(self) -> list[InputSpec]:
        """Inputs that carry a widget in the editor, in declaration order."""
        return [spec for spec in self.inputs.values() if spec.is_widget]


    def object_info(self) -> dict[str, Any]:
        """This node's `/object_info` entry, in exactly ComfyUI's shape."""
        info: dict[str, Any] = {
            "input": {section: dict(entries) for section, entries in self.raw_input_types.items()},
            "input_order": self.input_order(),
            "output": list(self.raw_outputs),
            "output_is_list": [o.is_list for o in self.outputs],
            "output_name": list(self.raw_output_names),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }
        if self.output_tooltips:
            info["output_tooltips"] = list(self.output_tooltips)
        if self.deprecated:
            info["deprecated"] = True
        if self.experimental:
            info["experimental"] = True
        if self.api_node is not None:
            info["api_node"] = self.api_node
        return info
