"""Workflow files -> API prompts.

Accepted inputs (detected from content, not from the file name):

- an API-format prompt `{id: {"class_type", "inputs"}}` (also wrapped as `{"prompt": {...}}`);
- a ComfyUI UI-format workflow (litegraph serialization, schema 0.4 or 1): widget values are
  mapped by position through the registry's input order (skipping the editor-only
  control_after_generate and upload slots), links are followed through Reroute and
  PrimitiveNode virtual nodes, muted nodes are dropped and bypassed nodes are passed through;
- our own workflow format (docs/WORKFLOW_FORMAT.md): inputs stored by name, versioned;
- a PNG carrying ComfyUI's "prompt" / "workflow" tEXt chunks.

As in the ComfyUI editor, a seed's control_after_generate mode applies *after* a run, so a
workflow runs with the values it stores. Also as the editor does when it opens a file, a widget
input the file lacks (saved before the node gained it) gets its default, with one warning per
node and input; POST /prompt does not do this and keeps ComfyUI's strict validation. A PNG whose
API prompt fails validation is read from its UI workflow instead, when that one validates.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UnknownNodeError, WorkflowFormatError
from engine.nodedef import InputSpec, NodeDefinition
from engine.registry import NodeRegistry

FORMAT_NAME = "latentgraph.workflow"
FORMAT_VERSION = 1
MODE_ALWAYS, MODE_NEVER, MODE_BYPASS = 0, 2, 4
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
VIRTUAL_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class LoadedWorkflow:
    prompt: dict[str, Any]  # API format
    source_format: str  # "api" | "comfyui-ui" | "latentgraph" | "png:api" | "png:comfyui-ui"
    workflow: dict[str, Any] | None = None  # UI workflow to embed in saved files, when known
    warnings: list[str] = field(default_factory=list)

    def extra_pnginfo(self) -> dict[str, Any]:
        return {"workflow": self.workflow} if self.workflow is not None else {}


# ---- detection ----------------------------------------------------------------------------
def is_api_prompt(data: Any) -> bool:
    return (isinstance(data, dict) and bool(data)
            and all(isinstance(v, dict) and "class_type" in v for v in data.values()))


def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def is_latentgraph_workflow(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


def load_workflow_file(path: str | Path, registry: NodeRegistry) -> LoadedWorkflow:
    """Read a workflow from disk in any supported format."""
    data = Path(path).read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return load_png_workflow(data, registry)
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowFormatError(f"{path}: not JSON and not a PNG ({exc})") from exc
    return load_workflow_data(document, registry)


def load_workflow_data(document: Any, registry: NodeRegistry) -> LoadedWorkflow:
    """Convert an already-parsed JSON document."""
    if is_latentgraph_workflow(document):
        warnings: list[str] = []
        nodes = document.get("nodes")
        if isinstance(nodes, dict):
            nodes = {node_id: _node_with_defaults(node_id, node, "type", registry, warnings)
                     for node_id, node in nodes.items()}
            document = {**document, "nodes": nodes}
        return LoadedWorkflow(latentgraph_to_api(document, registry), "latentgraph",
                              document.get("extra", {}).get("comfyui_workflow"), warnings)
    if is_ui_workflow(document):
        return _from_ui(document, registry, "comfyui-ui")
    if isinstance(document, dict) and is_api_prompt(document.get("prompt")):
        extra = document.get("extra_data", {}).get("extra_pnginfo", {}) if isinstance(
            document.get("extra_data"), dict) else {}
        return _from_api(document["prompt"], registry, "api", extra.get("workflow"))
    if is_api_prompt(document):
        return _from_api(document, registry, "api", None)
    raise WorkflowFormatError("not a workflow: expected an API prompt, a ComfyUI workflow, a "
                              f"{FORMAT_NAME} document or a PNG with workflow metadata")


def _from_api(prompt: dict[str, Any], registry: NodeRegistry, source_format: str,
              workflow: dict[str, Any] | None) -> LoadedWorkflow:
    warnings: list[str] = []
    filled = {node_id: _node_with_defaults(node_id, node, "class_type", registry, warnings)
              for node_id, node in prompt.items()}
    return LoadedWorkflow(filled, source_format, workflow, warnings)


def _from_ui(workflow: dict[str, Any], registry: NodeRegistry, source_format: str) -> LoadedWorkflow:
    converted = UIWorkflowConverter(workflow, registry)
    return LoadedWorkflow(converted.convert(), source_format, workflow, converted.warnings)


# ---- inputs saved before they existed --------------------------------------------------------
def widget_default(spec: InputSpec) -> Any:
    """The value ComfyUI's editor gives a new widget: the declared default, else the minimum
    (or 0) for numbers, "" for text, False for a toggle, the first choice of a combo."""
    if "default" in spec.options:
        return spec.options["default"]
    if spec.type in ("INT", "FLOAT"):
        return spec.options.get("min", 0)
    if spec.type == "COMBO":
        return spec.choices[0] if spec.choices else None
    return {"STRING": "", "BOOLEAN": False}.get(spec.type)


def add_missing_defaults(node_id: str, definition: NodeDefinition, inputs: dict[str, Any],
                         present: set[str], warnings: list[str]) -> None:
    """Give ``inputs`` the default of every widget input the file does not mention (``present``:
    the names it stores a value or a link for), with one warning each."""
    for spec in definition.widget_inputs():
        if spec.name in present or spec.name in inputs:
            continue
        value = widget_default(spec)
        if value is None:
            continue
        inputs[spec.name] = _wrap_list(value)
        warnings.append(f"node {node_id} ({definition.name}): input '{spec.name}' is missing from the file "
                        f"(saved before the node had it?); using its default {json.dumps(value)}")


def _node_with_defaults(node_id: str, node: Any, type_key: str, registry: NodeRegistry,
                        warnings: list[str]) -> Any:
    """An API-prompt or latentgraph node with its missing widget inputs filled (a copy)."""
    if not isinstance(node, dict):
        return node
    try:
        definition = registry.current(node.get(type_key))
    except (UnknownNodeError, TypeError):
        return node  # validation reports it
    inputs = dict(node.get("inputs") or {})
    add_missing_defaults(str(node_id), definition, inputs, set(inputs), warnings)
    return {**node, "inputs": inputs}


# ---- PNG ----------------------------------------------------------------------------------
def read_png_text(data: bytes) -> dict[str, str]:
    """tEXt / zTXt / iTXt chunks of a PNG (stdlib only; no image decoding)."""
    if not data.startswith(PNG_SIGNATURE):
        raise WorkflowFormatError("not a PNG file")
    texts: dict[str, str] = {}
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"tEXt":
            key, _, value = body.partition(b"\x00")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\x00")
            texts[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\x00")
            compressed, _method = rest[0], rest[1]
            _lang, _, rest = rest[2:].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            texts[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
        elif kind == b"IEND":
            break
    return texts


def load_png_workflow(data: bytes, registry: NodeRegistry) -> LoadedWorkflow:
    """Prefer the exact API prompt that produced the image; fall back to the UI workflow when
    there is no prompt, or when the prompt fails validation and the UI workflow passes it."""
    texts = read_png_text(data)
    workflow = _json_or_none(texts.get("workflow"))
    prompt = _json_or_none(texts.get("prompt"))
    has_ui = is_ui_workflow(workflow)
    if is_api_prompt(prompt):
        loaded = _from_api(prompt, registry, "png:api", workflow if has_ui else None)
        if has_ui:
            fallback = _ui_instead(loaded, workflow, registry)
            if fallback is not None:
                return fallback
        return loaded
    if has_ui:
        return _from_ui(workflow, registry, "png:comfyui-ui")
    raise WorkflowFormatError("the PNG carries no 'prompt' or 'workflow' metadata")


def _ui_instead(loaded: LoadedWorkflow, workflow: dict[str, Any], registry: NodeRegistry) -> LoadedWorkflow | None:
    """The PNG's UI workflow when its API prompt fails validation and the UI workflow does not."""
    from engine.validation import validate_prompt

    api_result = validate_prompt(loaded.prompt, registry)
    if api_result.ok and not api_result.node_errors:
        return None
    try:
        ui = _from_ui(workflow, registry, "png:comfyui-ui")
    except WorkflowFormatError:
        return None
    ui_result = validate_prompt(ui.prompt, registry)
    if not ui_result.ok or ui_result.node_errors:
        return None
    reason = (api_result.error or {}).get("message") or "some outputs are invalid"
    ui.warnings.insert(0, f"the PNG's API prompt failed validation ({reason}); loaded its UI workflow instead")
    return ui


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


# ---- ComfyUI UI format ----------------------------------------------------------------------
@dataclass
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: Any


class UIWorkflowConverter:
    """ComfyUI's graphToPrompt, done on the server side with the registry's input order."""

    def __init__(self, workflow: dict[str, Any], registry: NodeRegistry) -> None:
        self.workflow = workflow
        self.registry = registry
        self.warnings: list[str] = []
        self.nodes: dict[str, dict[str, Any]] = {}
        for raw in workflow.get("nodes", []):
            if not isinstance(raw, dict) or "id" not in raw:
                raise WorkflowFormatError("workflow node without an id")
            self.nodes[str(raw["id"])] = raw
        self.links = self._parse_links(workflow.get("links") or [])
        subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
        self.subgraph_ids = {str(s.get("id")) for s in subgraphs if isinstance(s, dict)}

    def _parse_links(self, raw_links: list[Any]) -> dict[int, _Link]:
        links: dict[int, _Link] = {}
        for raw in raw_links:
            if isinstance(raw, (list, tuple)) and len(raw) >= 5:  # schema 0.4
                link_id, origin, origin_slot, target, target_slot = raw[:5]
                kind = raw[5] if len(raw) > 5 else None
            elif isinstance(raw, dict):  # schema 1
                link_id, origin, origin_slot = raw.get("id"), raw.get("origin_id"), raw.get("origin_slot")
                target, target_slot, kind = raw.get("target_id"), raw.get("target_slot"), raw.get("type")
            else:
                raise WorkflowFormatError(f"unreadable link {raw!r}")
            links[int(link_id)] = _Link(str(origin), int(origin_slot), str(target), int(target_slot), kind)
        return links

    def convert(self) -> dict[str, Any]:
        prompt: dict[str, Any] = {}
        for node_id, raw in self.nodes.items():
            node_type = raw.get("type")
            if node_type in VIRTUAL_TYPES or raw.get("mode", MODE_ALWAYS) in (MODE_NEVER, MODE_BYPASS):
                continue
            if str(node_type) in self.subgraph_ids:
                raise WorkflowFormatError(f"node {node_id} is a subgraph; subgraphs are not supported yet")
            if isinstance(node_type, str) and node_type.startswith(("workflow>", "workflow/")):
                raise WorkflowFormatError(f"node {node_id} is a group node ({node_type}); group nodes are not "
                                          "supported yet: convert it back to its nodes in the editor")
            definition = self._definition(node_type)
            inputs = self._widget_values(node_id, raw, definition) if definition else {}
            if definition is not None:
                linked = {(slot.get("widget") or {}).get("name") or slot.get("name")
                          for slot in raw.get("inputs") or [] if slot.get("link") is not None}
                add_missing_defaults(node_id, definition, inputs, linked, self.warnings)
            for slot in raw.get("inputs") or []:
                link_id = slot.get("link")
                if link_id is None:
                    continue
                name = (slot.get("widget") or {}).get("name") or slot.get("name")
                resolved = self._resolve(link_id, set())
                if resolved is _DROP:
                    inputs.pop(name, None)
                else:
                    inputs[name] = resolved
            entry: dict[str, Any] = {"inputs": inputs, "class_type": node_type}
            title = raw.get("title") or (definition.display_name if definition else node_type)
            entry["_meta"] = {"title": title}
            prompt[node_id] = entry
        # ComfyUI drops inputs linking to nodes that are not in the prompt (e.g. virtual leftovers)
        for entry in prompt.values():
            for name, value in list(entry["inputs"].items()):
                if _is_link(value) and value[0] not in prompt:
                    del entry["inputs"][name]
        return prompt

    def _definition(self, node_type: Any) -> NodeDefinition | None:
        try:
            return self.registry.current(node_type)
        except (UnknownNodeError, TypeError):
            self.warnings.append(f"unknown node type {node_type!r}")
            return None

    def _widget_values(self, node_id: str, raw: dict[str, Any], definition: NodeDefinition) -> dict[str, Any]:
        values = raw.get("widgets_values")
        if values is None:
            return {}
        if isinstance(values, dict):  # custom widgets may serialize by name
            return {name: _wrap_list(v) for name, v in values.items() if name in definition.inputs}
        inputs: dict[str, Any] = {}
        position = 0
        for spec in definition.widget_inputs():
            if position >= len(values):
                break
            inputs[spec.name] = _wrap_list(values[position])
            position += 1
            if position < len(values) and self._has_control(spec) and values[position] in CONTROL_VALUES:
                position += 1  # the editor's control_after_generate widget
            elif (position < len(values) and spec.options.get("image_upload")
                  and values[position] in ("image", "upload")):
                position += 1  # the upload button's placeholder value
        return inputs

    @staticmethod
    def _has_control(spec: Any) -> bool:
        return bool(spec.options.get("control_after_generate")) or spec.name in ("seed", "noise_seed")

    def _resolve(self, link_id: int, seen: set[int]) -> Any:
        """Follow a link upstream to a real node output or a constant; _DROP when there is none."""
        if link_id in seen:
            raise WorkflowFormatError(f"link {link_id} loops through virtual or bypassed nodes")
        seen.add(link_id)
        link = self.links.get(int(link_id))
        if link is None:
            self.warnings.append(f"link {link_id} is missing from the workflow's link table")
            return _DROP
        origin = self.nodes.get(link.origin_id)
        if origin is None:
            return _DROP
        origin_type, mode = origin.get("type"), origin.get("mode", MODE_ALWAYS)
        if origin_type == "Reroute":
            slots = origin.get("inputs") or []
            upstream = slots[0].get("link") if slots else None
            return _DROP if upstream is None else self._resolve(upstream, seen)
        if origin_type == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            return _wrap_list(values[0]) if values else _DROP
        if origin_type in VIRTUAL_TYPES or mode == MODE_NEVER:
            return _DROP
        if mode == MODE_BYPASS:
            return self._through_bypass(origin, link, seen)
        return [link.origin_id, link.origin_slot]

    def _through_bypass(self, origin: dict[str, Any], link: _Link, seen: set[int]) -> Any:
        """A bypassed node forwards the input whose type matches the output (same slot first)."""
        outputs = origin.get("outputs") or []
        wanted = link.type or (outputs[link.origin_slot].get("type") if link.origin_slot < len(outputs) else None)
        slots = origin.get("inputs") or []
        order = ([link.origin_slot] if link.origin_slot < len(slots) else []) + \
            [i for i in range(len(slots)) if i != link.origin_slot]
        for index in order:
            slot = slots[index]
            if slot.get("link") is None:
                continue
            if wanted is None or slot.get("type") == wanted or "*" in (slot.get("type"), wanted):
                return self._resolve(slot["link"], seen)
        return _DROP


class _Drop:
    def __repr__(self) -> str:
        return "<dropped input>"


_DROP = _Drop()


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _wrap_list(value: Any) -> Any:
    """A widget whose value is itself a list travels as {"__value__": [...]} (not a link)."""
    return {"__value__": value} if isinstance(value, list) else value


# ---- our own format -------------------------------------------------------------------------
def latentgraph_to_api(document: dict[str, Any], registry: NodeRegistry | None = None) -> dict[str, Any]:
    """Our format -> API prompt: links are {"node", "output"}; muted nodes vanish; bypassed
    nodes forward their first input whose source type matches the consumed output."""
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise WorkflowFormatError(f"{FORMAT_NAME} version {version!r} is not supported (expected {FORMAT_VERSION})")
    nodes = document.get("nodes")
    if not isinstance(nodes, dict):
        raise WorkflowFormatError(f"{FORMAT_NAME}: 'nodes' must be an object keyed by node id")
    for node_id, node in nodes.items():
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise WorkflowFormatError(f"{FORMAT_NAME}: node {node_id!r} needs a 'type'")

    def resolve(value: Any, depth: int = 0) -> Any:
        if not (isinstance(value, dict) and set(value) == {"node", "output"}):
            return _wrap_list(value)
        source_id, slot = str(value["node"]), value["output"]
        source = nodes.get(source_id)
        if source is None:
            raise WorkflowFormatError(f"{FORMAT_NAME}: link to unknown node {source_id!r}")
        if isinstance(slot, str):
            slot = _output_index(registry, source["type"], slot)
        mode = source.get("mode", "active")
        if mode == "muted":
            return _DROP
        if mode == "bypassed":
            if depth > len(nodes):
                raise WorkflowFormatError(f"{FORMAT_NAME}: bypass loop at node {source_id!r}")
            wanted = _output_type(registry, source["type"], slot)
            links = [v for v in (source.get("inputs") or {}).values()
                     if isinstance(v, dict) and set(v) == {"node", "output"}]
            for candidate in links:
                upstream = nodes.get(str(candidate["node"]))
                if upstream is None:
                    continue
                got = _output_type(registry, upstream["type"], candidate["output"])
                if wanted is None or got is None or got == wanted or "*" in (got, wanted):
                    return resolve(candidate, depth + 1)
            return _DROP
        return [source_id, int(slot)]

    prompt: dict[str, Any] = {}
    for node_id, node in nodes.items():
        if node.get("mode", "active") != "active":
            continue
        inputs = {}
        for name, value in (node.get("inputs") or {}).items():
            resolved = resolve(value)
            if resolved is not _DROP:
                inputs[name] = resolved
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        prompt[str(node_id)] = entry
    return prompt


def _output_index(registry: NodeRegistry | None, node_type: str, name: str) -> int:
    if registry is None or node_type not in registry:
        raise WorkflowFormatError(f"cannot resolve output {name!r} of {node_type!r} without its definition")
    for index, output in enumerate(registry.get(node_type).outputs):
        if output.name == name:
            return index
    raise WorkflowFormatError(f"{node_type} has no output named {name!r}")


def _output_type(registry: NodeRegistry | None, node_type: str, slot: Any) -> str | None:
    if registry is None or node_type not in registry:
        return None
    outputs = registry.get(node_type).outputs
    if isinstance(slot, str):
        slot = _output_index(registry, node_type, slot)
    return outputs[slot].type if 0 <= int(slot) < len(outputs) else None


def api_to_latentgraph(prompt: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """API prompt -> our format (inputs by name, links as {"node", "output"})."""
    nodes: dict[str, Any] = {}
    for node_id, node in prompt.items():
        inputs = {}
        for name, value in node.get("inputs", {}).items():
            if _is_link(value) or (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
                inputs[name] = {"node": str(value[0]), "output": int(value[1])}
            elif isinstance(value, dict) and set(value) == {"__value__"}:
                inputs[name] = value["__value__"]
            else:
                inputs[name] = value
        entry: dict[str, Any] = {"type": node["class_type"], "inputs": inputs}
        title = (node.get("_meta") or {}).get("title")
        if title:
            entry["title"] = title
        nodes[str(node_id)] = entry
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "nodes": nodes, "extra": extra or {}}


def apply_overrides(prompt: dict[str, Any], overrides: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """Set NODE.INPUT=VALUE overrides; NODE is a node id or a unique node title."""
    result = {node_id: {**node, "inputs": dict(node.get("inputs", {}))} for node_id, node in prompt.items()}
    for target, input_name, value in overrides:
        node_id = _find_node(result, target)
        result[node_id]["inputs"][input_name] = value
    return result


def _find_node(prompt: dict[str, Any], target: str) -> str:
    if target in prompt:
        return target
    matches = [node_id for node_id, node in prompt.items() if (node.get("_meta") or {}).get("title") == target]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise WorkflowFormatError(f"no node with id or title {target!r}")
    raise WorkflowFormatError(f"title {target!r} is ambiguous (nodes {', '.join(matches)}); use the node id")
