"""Executes a validated prompt: demand-driven from the output nodes, cached by structure.

One `Executor` lives for the whole process (it owns the node-instance cache and remembers each
node's last fingerprint to explain re-runs); each `execute()` call builds a `_PromptRun` that
holds that prompt's state, so nothing about a running prompt is global.

Forcing re-runs: `execute(force=True)` or `extra_data={"force": True}` re-runs every node of
the prompt; `extra_data={"force_nodes": ["3", ...]}` re-runs those nodes and everything
downstream of them. Forced results still refresh the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from engine import cachekeys
from engine.blocker import ExecutionBlocker
from engine.cache import CacheEntry, OutputCache
from engine.errors import DependencyCycleError, InputMutationError, InterruptedByUser, NodeOutputError
from engine.events import ExecutionListener, FanOutListener, NullListener
from engine.interrupt import InterruptFlag
from engine.nodedef import NodeDefinition
from engine.registry import NodeRegistry
from engine.runtime import _node as _node_context_var  # set directly: this is the hot path
from engine.runtime import NodeContext, Services, using_services
from engine.validation import ValidationResult, validate_prompt

log = logging.getLogger(__name__)

_MISSING = object()
_INSTANCE_CACHE_SIZE = 2048
_FINGERPRINT_MEMORY = 20000
OUT_OF_MEMORY_ADVICE = (
    "Out of memory. Try a smaller image size or batch size, start with --lowvram (or a smaller "
    "--vram-budget), decode with VAE Decode (Tiled), or free memory (unload models) and run again.")
_PROGRESS_STATE_FULL_LIMIT = 256  # ComfyUI sends every non-pending node; beyond this we do not


@dataclass
class ExecutionOutcome:
    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> merged ui dict
    messages: list[list[Any]] = field(default_factory=list)  # [[event, data], ...] as in history
    # node id -> {"state", "reason"}; read-only: nodes with the same report may share one dict
    run_report: dict[str, dict[str, str]] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)  # validation errors
    executed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"


class _Stop(Exception):
    """Ends a prompt early; carries the final status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def _timestamp() -> int:
    return int(time.time() * 1000)


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


class Executor:
    """Runs prompts against a registry, sharing one output cache between prompts."""

    def __init__(self, registry: NodeRegistry, cache: OutputCache, services: Services, *,
                 mutation_check: bool | None = None) -> None:
        self.registry = registry
        self.cache = cache
        self.services = services
        self.mutation_check = (bool(services.settings.get("debug_mutation_check", False))
                               if mutation_check is None else mutation_check)
        self._instances: OrderedDict[str, Any] = OrderedDict()  # node id -> instance, least recent first
        self._fingerprints: dict[str, bytes] = {}  # last fingerprint (serialised key material) per node id
        self._lock = threading.Lock()

    def execute(self, prompt: dict[str, Any], prompt_id: str, listener: ExecutionListener | None = None,
                extra_data: dict[str, Any] | None = None, outputs: Iterable[str] | None = None,
                interrupt: InterruptFlag | None = None, force: bool = False) -> ExecutionOutcome:
        """Validate and run `prompt`; never raises for node failures (see outcome.status)."""
        with self._lock:
            return _PromptRun(self, prompt, prompt_id, listener, extra_data or {}, interrupt, force).execute(outputs)

    # ---- state shared across prompts ----------------------------------------------------
    def _instance(self, node_id: str, definition: NodeDefinition) -> Any:
        """The node's instance, reused per node id while its class stays the same, as ComfyUI
        does (nodes may keep state)."""
        instances = self._instances
        instance = instances.get(node_id)
        if instance is None or type(instance) is not definition.node_class:
            instance = definition.node_class()
            instances[node_id] = instance
            if len(instances) > _INSTANCE_CACHE_SIZE:
                instances.popitem(last=False)
        else:
            instances.move_to_end(node_id)
        return instance

    def _remember(self, fingerprints: dict[str, bytes]) -> None:
        """Record the fingerprints of the nodes a prompt ran or served, to explain the next run."""
        memory = self._fingerprints
        memory.update(fingerprints)
        if len(memory) > _FINGERPRINT_MEMORY:  # forget the oldest ids (insertion order)
            for node_id in list(memory)[: len(memory) - _FINGERPRINT_MEMORY]:
                del memory[node_id]

    def reset(self) -> None:
        """Forget cached outputs, node instances and fingerprints (ComfyUI's free_memory)."""
        self.cache.clear()
        self._instances.clear()
        self._fingerprints.clear()


class _Node:
    """One node's state within a prompt run.

    One record per node, instead of a dict per field keyed by node id, keeps everything the hot
    path touches for a node in one place: on graphs of thousands of nodes that locality (and
    the lookups saved) is what keeps the per-node cost flat.
    """

    __slots__ = ("id", "definition", "inputs", "plan", "sources", "strong_sources", "key", "fingerprint",
                 "target", "forced", "entry", "outputs", "waiting", "waiters")

    def __init__(self, node_id: str, definition: NodeDefinition, inputs: dict[str, Any]) -> None:
        self.id = node_id
        self.definition = definition
        self.inputs = inputs  # the validated inputs (constants and [source id, slot] links)
        # (input name, source node or None, slot or constant) per present declared input, in order
        self.plan: list[tuple[str, _Node | None, Any]] = []
        self.sources: list[_Node] = []  # linked sources, each once
        self.strong_sources = self.sources  # the sources of its non-lazy inputs (all, usually)
        self.key = 0  # issued by the cache's KeyTable
        self.fingerprint = b""  # its serialised key material: explains the next run
        self.target = False  # an output node this prompt asks for
        self.forced = False
        self.entry: CacheEntry | None = None  # its cache entry, pinned for this prompt
        self.outputs: list[list[Any]] | None = None  # per-slot value lists, once run or served
        self.waiting: int | None = None  # sources still awaited; None while not scheduled
        self.waiters: list[_Node] | None = None  # scheduled nodes waiting for this one

    def __repr__(self) -> str:
        return f"_Node({self.id!r}, {self.definition.name!r})"


class _PromptRun:
    """All the state of one prompt's execution."""

    def __init__(self, executor: Executor, prompt: dict[str, Any], prompt_id: str,
                 listener: ExecutionListener | None, extra_data: dict[str, Any],
                 interrupt: InterruptFlag | None, force: bool) -> None:
        self.executor = executor
        self.cache = executor.cache
        self.original_prompt = prompt
        self.prompt_id = prompt_id
        self.quiet = listener is None or isinstance(listener, NullListener)
        self.listener: ExecutionListener = FanOutListener(listener) if not self.quiet else NullListener()
        self.extra_data = extra_data
        self.interrupt = interrupt
        self.force_all = bool(force or extra_data.get("force"))
        self.force_nodes = {str(n) for n in extra_data.get("force_nodes", ()) or ()}
        self.outcome = ExecutionOutcome(prompt_id, "success")
        # per-prompt graph state
        self.prompt: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, _Node] = {}  # the valid nodes, sources before consumers
        self.local_by_key: dict[int, CacheEntry] = {}  # this prompt's results, whatever the cache keeps
        self.consumers: dict[int, int] | None = None  # uses left per key, with --cache-none only
        self.holders: dict[int, list[_Node]] = {}
        self.pending_count = 0
        self.ready: list[_Node] = []
        self.ready_outputs: list[_Node] = []
        self.progress: dict[str, dict[str, Any]] = {}
        self._shared_reports: dict[tuple[str, str], dict[str, str]] = {}
        self.active_progress: dict[str, dict[str, Any]] = {}

    # ---- events -------------------------------------------------------------------------
    def _emit(self, event: str, data: dict[str, Any]) -> None:
        if not self.quiet:
            self.listener.on_event(event, data)

    def _message(self, event: str, data: dict[str, Any]) -> None:
        """An event that also goes into the history's status messages."""
        self.outcome.messages.append([event, data])
        self._emit(event, data)

    def _progress_state(self, node_id: str, state: str, value: float = 0, total: float = 1) -> None:
        if self.quiet:
            return
        # Entries are replaced, never mutated, so a shallow copy is a safe snapshot.
        entry = {"value": value, "max": total, "state": state, "node_id": node_id,
                 "prompt_id": self.prompt_id, "display_node_id": node_id,
                 "parent_node_id": None, "real_node_id": node_id}
        self.progress[node_id] = entry
        if state == "finished":
            self.active_progress.pop(node_id, None)
        else:
            self.active_progress[node_id] = entry
        if len(self.progress) <= _PROGRESS_STATE_FULL_LIMIT:
            nodes = dict(self.progress)
        else:  # huge graphs: finished nodes are left out to keep each event O(active nodes)
            nodes = dict(self.active_progress)
            nodes[node_id] = entry
        self._emit("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    def _shared_report(self, state: str, reason: str) -> dict[str, str]:
        """One report dict per (state, reason) for this prompt: thousands of nodes share a
        handful of reports, and a dict per node is memory the collector must scan."""
        key = (state, reason)
        report = self._shared_reports.get(key)
        if report is None:
            report = self._shared_reports[key] = {"state": state, "reason": reason}
        return report

    def _report(self, node_id: str, state: str, reason: str) -> None:
        self.outcome.run_report[node_id] = self._shared_report(state, reason)
        if not self.quiet:
            self._emit("lg.node_report", {"prompt_id": self.prompt_id, "node": node_id, "state": state,
                                          "reason": reason})

    # ---- top level ----------------------------------------------------------------------
    def execute(self, outputs: Iterable[str] | None) -> ExecutionOutcome:
        self._message("execution_start", {"prompt_id": self.prompt_id, "timestamp": _timestamp()})
        services = self.executor.services
        try:
            with using_services(services), _inference_mode():
                if not self._plan(outputs):
                    return self.outcome
                self._run_loop()
                self._finish_report()
                self._emit("lg.run_report", {"prompt_id": self.prompt_id, "nodes": self.outcome.run_report})
                self._message("execution_success", {"prompt_id": self.prompt_id, "timestamp": _timestamp()})
        except _Stop as stop:
            self.outcome.status = stop.status
        finally:
            nodes = self.nodes  # executed = the nodes that ran or were served, in order
            self.executor._remember({node_id: nodes[node_id].fingerprint for node_id in self.outcome.executed})
        return self.outcome

    def _plan(self, outputs: Iterable[str] | None) -> bool:
        """Validate, key, look up and schedule the prompt; False when validation failed."""
        validation = validate_prompt(self.original_prompt, self.executor.registry,
                                     partial_targets=outputs)
        self.outcome.node_errors = validation.node_errors
        if not validation.ok:
            self._validation_failed(validation)
            return False
        self.prompt = validation.prompt
        cached = self._build_nodes(validation.order, validation.definitions)
        nodes = self.nodes
        for output in validation.good_outputs:
            nodes[output].target = True
        if not self.cache.enabled:
            self._count_consumers()
        self._message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id,
                                           "timestamp": _timestamp()})
        for output in validation.good_outputs:
            self._add(nodes[output])
        if not self.quiet:  # the nodes now pending (lazy inputs may add more while running)
            self._emit("lg.plan", {"prompt_id": self.prompt_id,
                                   "pending": [n.id for n in nodes.values() if n.waiting is not None],
                                   "cached": cached})
        return True

    def _validation_failed(self, validation: ValidationResult) -> None:
        error = dict(validation.error or {})
        error["node_errors"] = validation.node_errors
        self.outcome.status = "error"
        self.outcome.error = error
        failing = next(iter(validation.node_errors), None)
        lines = [error.get("message", "Prompt failed validation")]
        if error.get("details"):
            lines.append(str(error["details"]))
        self._message("execution_error", {
            "prompt_id": self.prompt_id, "node_id": failing,
            "node_type": validation.node_errors[failing]["class_type"] if failing else None,
            "executed": [], "exception_message": "\n".join(lines), "exception_type": "ValidationError",
            "traceback": [], "current_inputs": {}, "current_outputs": [], "timestamp": _timestamp()})

    # ---- keys and reasons ---------------------------------------------------------------
    def _build_nodes(self, order: list[str], definitions: dict[str, NodeDefinition]) -> list[str]:
        """One record per valid node, sources first: its links, cache key and forced flag, and the
        cache entry it may be served from (looked up once, pinned for this prompt). Returns the
        ids of the nodes found in the cache. One pass: every extra walk over a large graph costs
        memory traffic."""
        nodes, prompt = self.nodes, self.prompt
        atoms = cachekeys.ATOM_TYPES
        serialize, name_key, lookup = cachekeys.serialize, self.cache.keys.key, self.cache.get
        force_all, force_nodes = self.force_all, self.force_nodes
        cached: list[str] = []
        for node_id in order:
            spec = prompt[node_id]
            definition = definitions[spec["class_type"]]
            inputs = spec["inputs"]
            node = _Node(node_id, definition, inputs)
            plan, sources = node.plan, node.sources
            parts: list[tuple[str, Any]] = []
            for name in definition.inputs:
                value = inputs.get(name, _MISSING)
                if value is _MISSING:
                    continue
                kind = type(value)
                if kind is list:
                    source = nodes[value[0]]  # validation guarantees it, and order puts it first
                    slot = value[1]
                    parts.append((name, (source.key, slot)))
                    plan.append((name, source, slot))
                    if source not in sources:
                        sources.append(source)
                    continue
                plan.append((name, None, value))
                if kind in atoms:
                    parts.append((name, value))
                else:
                    try:
                        parts.append((name, cachekeys.canonical(value)))
                    except cachekeys.Uncacheable:
                        parts.append((name, cachekeys.never_equal()))
            lazy = definition.lazy_inputs
            if lazy:
                strong = {source for name, source, _ in plan if source is not None and name not in lazy}
                node.strong_sources = [source for source in sources if source in strong]
            tokens = tuple(parts)
            changed = self._is_changed(node_id, definition, inputs) if definition.is_changed else None
            ident = node_id if (definition.not_idempotent or definition.has_unique_id) else None
            material = serialize((definition.name, ident, changed, tokens))
            key = name_key(material)
            node.key = key
            node.fingerprint = material
            nodes[node_id] = node
            if force_all or (force_nodes and (node_id in force_nodes
                                              or any(source.forced for source in sources))):
                node.forced = True  # forcing a node re-runs everything downstream of it too
                continue
            entry = lookup(key)
            if entry is not None:
                node.entry = entry
                cached.append(node_id)
        return cached

    def _is_changed(self, node_id: str, definition: NodeDefinition, inputs: dict[str, Any]) -> Any:
        """IS_CHANGED gets the constant inputs only (linked ones are None), once per prompt."""
        values: dict[str, Any] = {}
        for name in definition.inputs:
            if name in inputs:
                value = inputs[name]
                values[name] = None if type(value) is list else value
        values.update(self._hidden_values(node_id, definition))
        spec = definition.is_changed
        assert spec is not None
        try:
            result = definition.node_class.IS_CHANGED(**spec.filter(values))
            return cachekeys.is_changed_token(result)
        except cachekeys.Uncacheable:
            return cachekeys.never_equal()
        except Exception:
            log.warning("IS_CHANGED of node %s (%s) raised; it will re-run", node_id, definition.name,
                        exc_info=True)
            return cachekeys.never_equal()

    def _reason(self, node: _Node) -> str:
        if node.forced:
            return "forced"
        now = node.fingerprint
        before = self.executor._fingerprints.get(node.id)
        if before is None:
            return "new"
        if before == now:
            return "evicted from cache" if self.cache.enabled else "cache disabled"
        before_class, _, before_changed, before_tokens = cachekeys.deserialize(before)
        now_class, _, now_changed, now_tokens = cachekeys.deserialize(now)
        if before_class != now_class:
            return "new"
        if before_changed != now_changed:
            return "IS_CHANGED changed"
        now_inputs, before_inputs = dict(now_tokens), dict(before_tokens)
        changed = [name for name in dict.fromkeys([*now_inputs, *before_inputs])
                   if now_inputs.get(name, _MISSING) != before_inputs.get(name, _MISSING)]
        if changed:
            return f"input {', '.join(changed)} changed"
        return "changed" if self.cache.enabled else "cache disabled"

    def _finish_report(self) -> None:
        report = self.outcome.run_report
        if len(report) == len(self.nodes):
            return  # every node ran or was served: nothing left to explain
        for node in self.nodes.values():
            if node.id in report:
                continue
            report[node.id] = (self._shared_report("skipped", "not needed") if node.entry is None
                               else self._shared_report("cached", "cached"))

    # ---- scheduling ---------------------------------------------------------------------
    def _resolve_cached(self, node: _Node, in_prompt_only: bool = False) -> bool:
        """Serve a node from this prompt's results or the cache (pins the value for this prompt)."""
        if node.forced:
            return False
        entry = self.local_by_key.get(node.key)
        if entry is not None:
            if self.consumers is not None:
                self._used(node.key)  # a duplicate took its copy
        elif in_prompt_only:
            return False
        else:
            entry = node.entry
            if entry is None:
                return False
        node.outputs, ui = entry.outputs, entry.ui
        self.outcome.executed.append(node.id)
        self._report(node.id, "cached", "cached")
        if node.target:
            if ui:
                self.outcome.outputs[node.id] = ui
                self._emit("executed", {"node": node.id, "display_node": node.id, "output": ui,
                                        "prompt_id": self.prompt_id})
            self._progress_state(node.id, "finished", 1, 1)
        return True

    def _servable(self, node: _Node) -> bool:
        """Whether _resolve_cached could serve `node`: the cheap test that spares the call for
        every node of a new graph."""
        return node.entry is not None or node.key in self.local_by_key

    def _add(self, root: _Node) -> None:
        """Schedule `root` and the uncached sources it needs (iterative: deep chains are fine)."""
        if root.outputs is not None or root.waiting is not None:
            return
        if self._servable(root) and self._resolve_cached(root):
            return
        stack = [root]
        wait_for = self._wait_for
        while stack:  # nodes pushed by _wait_for are known not to be cached
            node = stack.pop()
            if node.outputs is not None or node.waiting is not None:
                continue
            waiting = wait_for(node, node.strong_sources, stack)
            node.waiting = waiting
            self.pending_count += 1
            if waiting == 0:
                (self.ready_outputs if node.target else self.ready).append(node)

    def _wait_for(self, node: _Node, sources: list[_Node], stack: list[_Node]) -> int:
        """Register `node` as waiting on unresolved `sources`, each listed once (pushed on `stack`
        to schedule)."""
        waiting = 0
        local_by_key = self.local_by_key
        for source in sources:
            if source.outputs is not None:
                continue
            if (source.waiting is None and (source.entry is not None or source.key in local_by_key)
                    and self._resolve_cached(source)):  # the first test is _servable, inline
                continue
            if source.waiters is None:
                source.waiters = [node]
            else:
                source.waiters.append(node)
            waiting += 1
            if source.waiting is None:
                stack.append(source)
        return waiting

    def _complete(self, node: _Node, outputs: list[list[Any]]) -> None:
        node.outputs = outputs
        if node.waiting is not None:
            node.waiting = None
            self.pending_count -= 1
        waiters = node.waiters
        if waiters is not None:
            node.waiters = None
            for waiter in waiters:
                left = waiter.waiting - 1
                waiter.waiting = left
                if left == 0:
                    (self.ready_outputs if waiter.target else self.ready).append(waiter)
        if self.consumers is not None:
            for source in node.sources:
                self._used(source.key)

    def _count_consumers(self) -> None:
        """--cache-none: count the uses of each value (by key, so duplicates still share one)."""
        uses: dict[int, int] = {}
        holders: dict[int, list[_Node]] = {}
        for node in self.nodes.values():
            key = node.key
            if key in holders:
                holders[key].append(node)
                uses[key] = uses.get(key, 0) + 1  # a duplicate will take the value once
            else:
                holders[key] = [node]
            for source in node.sources:
                uses[source.key] = uses.get(source.key, 0) + 1
        self.consumers = uses
        self.holders = holders

    def _used(self, key: int) -> None:
        """One use of a value is over; free it after the last (only when the cache keeps nothing)."""
        assert self.consumers is not None
        left = self.consumers.get(key, 0) - 1
        self.consumers[key] = left
        if left > 0:
            return
        holders = self.holders.get(key, ())
        if any(holder.target for holder in holders):
            return
        self.local_by_key.pop(key, None)
        for holder in holders:
            holder.outputs = None

    def _run_loop(self) -> None:
        ready, ready_outputs = self.ready, self.ready_outputs
        while True:
            if ready_outputs:
                node = ready_outputs.pop()
            elif ready:
                node = ready.pop()
            else:
                break
            self._execute_node(node)
        if self.pending_count:
            stuck = sorted(node.id for node in self.nodes.values() if node.waiting is not None)
            self._fail(stuck[0], DependencyCycleError(stuck), {})

    # ---- running one node ---------------------------------------------------------------
    def _hidden_values(self, node_id: str, definition: NodeDefinition) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if not definition.hidden:
            return values
        for name, kind in definition.hidden.items():
            if kind == "PROMPT":
                values[name] = self.original_prompt
            elif kind == "EXTRA_PNGINFO":
                values[name] = self.extra_data.get("extra_pnginfo")
            elif kind == "UNIQUE_ID":
                values[name] = node_id
            elif kind == "AUTH_TOKEN_COMFY_ORG":
                values[name] = self.extra_data.get("auth_token_comfy_org")
            elif kind == "API_KEY_COMFY_ORG":
                values[name] = self.extra_data.get("api_key_comfy_org")
            else:  # DYNPROMPT and unknown kinds: we have no dynamic prompt object
                values[name] = None
        return values

    def _gather(self, node: _Node) -> dict[str, list[Any]]:
        """Every input as a list (ComfyUI list semantics); unevaluated lazy links are [None]."""
        data: dict[str, list[Any]] = {}
        for name, source, value in node.plan:
            if source is None:
                data[name] = [value]
            else:
                outputs = source.outputs
                data[name] = outputs[value] if outputs is not None else [None]
        if node.definition.hidden:
            for name, value in self._hidden_values(node.id, node.definition).items():
                data[name] = [value]
        return data

    def _execute_node(self, node: _Node) -> None:
        definition = node.definition
        node_id = node.id
        interrupt = self.interrupt
        if interrupt is not None and interrupt.is_set():
            self._interrupted(node_id, definition)
        key = node.key
        local_by_key = self.local_by_key
        if key in local_by_key and self._resolve_cached(node, True):
            self._complete(node, node.outputs)  # an identical node finished meanwhile
            return
        quiet = self.quiet
        if not quiet:
            self._emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
            self._progress_state(node_id, "running", 0, 1)
        executor = self.executor
        inputs: dict[str, list[Any]] = {}
        args: dict[str, Any] | None = None
        try:
            instance = executor._instance(node_id, definition)
            if not (definition.input_is_list or definition.has_lazy_check or executor.mutation_check):
                args = self._single_args(node)
            if args is None:
                inputs = self._gather(node)
                if definition.has_lazy_check and self._needs_lazy_inputs(node, instance, inputs):
                    return  # re-queued once the requested inputs are ready
            if node_id not in executor._fingerprints and not node.forced:
                reason = "new"
            else:
                reason = self._reason(node)
            if args is not None:
                outputs, ui = self._merge(node, [self._call_once(node, instance, args)])
            elif executor.mutation_check:
                outputs, ui = self._call_checked(node, instance, inputs)
            else:
                outputs, ui = self._merge(node, self._map(node, instance, definition.function, inputs))
        except InterruptedByUser:
            self._interrupted(node_id, definition)
        except _Stop:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # even SystemExit from a node must not end the process
            self._fail(node_id, exc, inputs if args is None else self._gather(node))
        if outputs and _has_blocker(outputs):
            self.cache.discard(key)  # blocked results depend on run-time decisions, not on the key
            local_by_key[key] = CacheEntry(outputs, ui, 0)
        else:
            local_by_key[key] = self.cache.put(key, outputs, ui)
        outcome = self.outcome
        outcome.executed.append(node_id)
        outcome.run_report[node_id] = self._shared_report("ran", reason)
        if ui:
            outcome.outputs[node_id] = ui
        if not quiet:
            self._emit("lg.node_report", {"prompt_id": self.prompt_id, "node": node_id, "state": "ran",
                                          "reason": reason})
            if ui:
                self._emit("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                        "prompt_id": self.prompt_id})
            self._progress_state(node_id, "finished", 1, 1)
        self._complete(node, outputs)

    def _needs_lazy_inputs(self, node: _Node, instance: Any, inputs: dict[str, list[Any]]) -> bool:
        """Ask check_lazy_status which lazy inputs it needs; schedule them if unevaluated."""
        links = node.inputs
        while True:
            requested: list[str] = []
            for names in self._map(node, instance, "check_lazy_status", inputs, lazy=True):
                if names:
                    requested.extend([names] if isinstance(names, str) else names)
            sources: list[_Node] = []
            for name in dict.fromkeys(requested):
                value = links.get(name)
                if type(value) is list:
                    source = self.nodes.get(value[0])
                    if source is not None and source.outputs is None and source not in sources:
                        sources.append(source)  # two inputs linked to one source: waited for once
            if not sources:
                return False
            stack: list[_Node] = []
            waiting = self._wait_for(node, sources, stack)
            for source in stack:
                self._add(source)
            if waiting:
                node.waiting = waiting
                return True
            inputs.update(self._gather(node))

    def _single_args(self, node: _Node) -> dict[str, Any] | None:
        """The call's keyword arguments when every input is exactly one value and none is a
        blocker (nearly every node): _gather + _map without the per-input lists. None when the
        general path must decide (a list to map over, an empty list or a blocker)."""
        args: dict[str, Any] = {}
        for name, source, value in node.plan:
            if source is not None:
                outputs = source.outputs
                if outputs is not None:
                    values = outputs[value]
                    if len(values) != 1:
                        return None
                    value = values[0]
                    if type(value) is ExecutionBlocker:
                        return None
                else:
                    value = None  # as _gather: an unevaluated link reads as None
            args[name] = value
        if node.definition.hidden:
            args.update(self._hidden_values(node.id, node.definition))
        return args

    def _context(self, node: _Node) -> NodeContext:
        return NodeContext(self.prompt_id, node.id, self.executor.services, self.interrupt,
                           None if self.quiet else self._progress_callback(node.id))

    def _call_once(self, node: _Node, instance: Any, args: dict[str, Any]) -> Any:
        """One call of the node's function with plain arguments (what _map does for one index)."""
        method = getattr(instance, node.definition.function)
        interrupt = self.interrupt
        token = _node_context_var.set(self._context(node))
        try:
            if interrupt is not None and interrupt.is_set():
                raise InterruptedByUser("interrupted")
            result = method(**args)
            kind = type(result)
            if kind is not tuple and kind is not dict and inspect.iscoroutine(result):
                result = _run_coroutine(result)  # `async def` node functions, as ComfyUI allows
            return result
        finally:
            _node_context_var.reset(token)

    def _map(self, node: _Node, instance: Any, function: str, inputs: dict[str, list[Any]],
             lazy: bool = False) -> list[Any]:
        """Call `function` once per list index (or once with whole lists for INPUT_IS_LIST)."""
        method = getattr(instance, function)
        interrupt = self.interrupt
        token = _node_context_var.set(self._context(node))
        try:
            if node.definition.input_is_list:
                blocker = None if lazy else next(
                    (v for values in inputs.values() for v in values if type(v) is ExecutionBlocker), None)
                if blocker is not None:
                    return [self._blocker(node, blocker)]
                result = method(**inputs)
                if type(result) is not tuple and inspect.iscoroutine(result):
                    result = _run_coroutine(result)  # `async def` node functions, as ComfyUI allows
                return [result]
            count = 1
            for values in inputs.values():
                length = len(values)
                if length != 1:
                    if length == 0:
                        return []  # an empty list input: the node is called zero times
                    if length > count:
                        count = length
            results: list[Any] = []
            for index in range(count):
                if interrupt is not None and interrupt.is_set():
                    raise InterruptedByUser("interrupted")
                if count == 1:
                    args = {name: values[0] for name, values in inputs.items()}
                else:
                    args = {name: values[index] if index < len(values) else values[-1]
                            for name, values in inputs.items()}
                blocker = None
                if not lazy:
                    for value in args.values():
                        if type(value) is ExecutionBlocker:
                            blocker = value
                            break
                if blocker is not None:
                    results.append(self._blocker(node, blocker))
                    continue
                result = method(**args)
                if type(result) is not tuple and inspect.iscoroutine(result):
                    result = _run_coroutine(result)  # `async def` node functions, as ComfyUI allows
                results.append(result)
            return results
        finally:
            _node_context_var.reset(token)

    def _blocker(self, node: _Node, blocker: ExecutionBlocker) -> ExecutionBlocker:
        if blocker.message is not None:
            self._emit("execution_error", {
                "prompt_id": self.prompt_id, "node_id": node.id, "node_type": node.definition.name,
                "executed": list(self.outcome.executed), "exception_message": blocker.message,
                "exception_type": "ExecutionBlocked", "traceback": [], "current_inputs": {},
                "current_outputs": []})
            return ExecutionBlocker(None)
        return blocker

    def _call_checked(self, node: _Node, instance: Any,
                      inputs: dict[str, list[Any]]) -> tuple[list[list[Any]], dict[str, Any] | None]:
        """The node call under --debug-mutation-check: snapshot inputs, call, compare."""
        from engine import mutation

        definition = node.definition
        records = mutation.snapshot({k: v for k, v in inputs.items() if k in definition.inputs})
        returns = self._map(node, instance, definition.function, inputs)
        if records:
            path = mutation.find_mutation(records)
            if path is not None:
                self._discard_sources(node)
                raise InputMutationError(
                    f"node {node.id} ({definition.name}) modified its input {path} in place; inputs may "
                    "be shared with the cache and other nodes: clone a value before changing it")
        return self._merge(node, returns)

    def _discard_sources(self, node: _Node) -> None:
        for source in node.sources:
            self.cache.discard(source.key)
            self.local_by_key.pop(source.key, None)

    def _merge(self, node: _Node, returns: list[Any]) -> tuple[list[list[Any]], dict[str, Any] | None]:
        """ComfyUI's result merge: per-call tuples -> per-slot lists; ui dicts concatenated."""
        definition, node_id = node.definition, node.id
        n_out = len(definition.outputs)
        if len(returns) == 1 and not definition.has_list_outputs:
            value = returns[0]
            kind = type(value)
            if kind is tuple and len(value) == n_out:  # the common case: one call, a tuple
                if n_out == 1:
                    return [[value[0]]], None
                return [[item] for item in value], None
            if kind is dict and n_out == 0 and "expand" not in value:  # an output node's ui dict
                result = value.get("result", ())
                if result is None or isinstance(result, (tuple, list)):
                    ui = value.get("ui")
                    if ui is None:
                        return [], None
                    merged: dict[str, Any] = {}
                    for k, v in ui.items():
                        merged[k] = list(v) if isinstance(v, list) else v
                    return [], merged
        tuples: list[Any] = []
        uis: list[dict[str, Any]] = []
        for value in returns:
            if type(value) is ExecutionBlocker:
                tuples.append((value,) * n_out)
                continue
            if isinstance(value, dict):
                if "expand" in value:
                    raise NodeOutputError(f"node {node_id} ({definition.name}) returned a graph to expand; "
                                          "node expansion is not supported")
                if value.get("ui") is not None:
                    uis.append(value["ui"])
                value = value.get("result", ())
            if value is None:
                value = ()
            if not isinstance(value, (tuple, list)):
                raise NodeOutputError(f"node {node_id} ({definition.name}) returned {type(value).__name__}; "
                                      "a node returns a tuple or a dict with 'ui'/'result'")
            if len(value) < n_out:
                raise NodeOutputError(f"node {node_id} ({definition.name}) returned {len(value)} values but "
                                      f"RETURN_TYPES declares {n_out}")
            tuples.append(value)
        outputs: list[list[Any]] = []
        for slot, spec in enumerate(definition.outputs):
            if spec.is_list:
                merged: list[Any] = []
                for value in tuples:
                    item = value[slot]
                    if type(item) is ExecutionBlocker:
                        merged.append(item)
                    else:
                        merged.extend(item)
                outputs.append(merged)
            else:
                outputs.append([value[slot] for value in tuples])
        ui: dict[str, Any] | None = None
        if uis:
            ui = {}
            for part in uis:
                for k, v in part.items():
                    if isinstance(v, list) and isinstance(ui.get(k), list):
                        ui[k] = ui[k] + v
                    else:
                        ui[k] = list(v) if isinstance(v, list) else v
        return outputs, ui

    def _progress_callback(self, node_id: str) -> Callable[[int, int, Any], None]:
        def on_progress(value: int, total: int, preview: tuple[str, bytes] | None) -> None:
            self._emit("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id})
            self._progress_state(node_id, "running", value, total)
            if preview is not None:
                image_format, image = preview
                self.listener.on_preview(self.prompt_id, node_id, image_format, image)

        return on_progress

    # ---- failures -----------------------------------------------------------------------
    def _interrupted(self, node_id: str, definition: NodeDefinition) -> None:
        self._message("execution_interrupted", {
            "prompt_id": self.prompt_id, "node_id": node_id, "node_type": definition.name,
            "executed": list(self.outcome.executed), "timestamp": _timestamp()})
        self.outcome.error = {"type": "interrupted", "node_id": node_id, "node_type": definition.name,
                              "exception_message": "Interrupted by the user"}
        raise _Stop("interrupted")

    def _fail(self, node_id: str, exc: BaseException, inputs: dict[str, list[Any]]) -> None:
        node = self.prompt.get(node_id, {})
        exc_type = type(exc)
        record = {
            "prompt_id": self.prompt_id, "node_id": node_id, "node_type": node.get("class_type"),
            "executed": list(self.outcome.executed), "exception_message": failure_message(exc),
            "exception_type": f"{exc_type.__module__}.{exc_type.__qualname__}"
            if exc_type.__module__ != "builtins" else exc_type.__qualname__,
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": {name: [_format_value(v) for v in values] for name, values in inputs.items()},
            "current_outputs": [n for n in self.outcome.executed if self.nodes[n].outputs is not None],
            "timestamp": _timestamp()}
        log.error("node %s (%s) failed: %s", node_id, node.get("class_type"), exc)
        self._progress_state(node_id, "error", 0, 1)
        self._message("execution_error", record)
        self.outcome.error = record
        raise _Stop("error")


def _has_blocker(outputs: list[list[Any]]) -> bool:
    for slot in outputs:
        for value in slot:
            if type(value) is ExecutionBlocker:
                return True
    return False


def is_out_of_memory(exc: BaseException) -> bool:
    """Allocator failures on any device: torch.OutOfMemoryError (matched by name, so torch-free
    graphs never import torch), MemoryError, or a RuntimeError saying so (CPU allocator)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or (isinstance(exc, RuntimeError) and "not enough memory" in text)


def failure_message(exc: BaseException) -> str:
    """A node failure's `exception_message`; out of memory leads with what the user can try."""
    text = str(exc)
    if not is_out_of_memory(exc):
        return text
    return f"{OUT_OF_MEMORY_ADVICE} (Details: {text})" if text.strip() else OUT_OF_MEMORY_ADVICE


def _run_coroutine(coroutine: Any) -> Any:
    """Finish an async node call on this (worker) thread, inside the node's context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise NodeOutputError("async nodes cannot run while an event loop is running in the executing thread")


@contextlib.contextmanager
def _inference_mode():
    """torch.inference_mode around node calls, without importing torch for torch-free graphs."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811
        except ImportError:  # pragma: no cover - torch is a hard requirement of the app
            yield
            return
    with torch.inference_mode():
        yield
