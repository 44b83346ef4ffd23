"""Executes a validated prompt: demand-driven from the output nodes, cached by structure.

One `Executor` lives for the whole process (it owns the node-instance cache and remembers each
node's last fingerprint to explain re-runs); each `execute()` call builds a `_PromptRun` that
holds that prompt's state, so nothing about a running prompt is global. How a node is called
is engine.callrules, why it re-ran engine.rerun, how a failure reads engine.failures.

Forcing re-runs: `execute(force=True)` or `extra_data={"force": True}` re-runs every node of
the prompt; `extra_data={"force_nodes": ["3", ...]}` re-runs those nodes and everything
downstream of them. Forced results still refresh the cache.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from engine import cachekeys, callrules, failures, mutation, rerun
from engine.blocker import ExecutionBlocker
from engine.cache import CacheEntry, OutputCache
from engine.callrules import Outputs
from engine.errors import DependencyCycleError, InputMutationError, InterruptedByUser
from engine.events import ExecutionListener, PromptEvents
from engine.interrupt import InterruptFlag
from engine.nodedef import NodeDefinition
from engine.outcome import ExecutionOutcome
from engine.registry import NodeRegistry
from engine.runtime import NodeContext, Services, node_context, using_services
from engine.validation import validate_prompt

log = logging.getLogger(__name__)

_INSTANCE_CACHE_SIZE = 2048


class _Stop(Exception):
    """Ends a prompt early; carries the final status."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


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
        self._fingerprints: dict[str, bytes] = {}  # node id -> its last fingerprint (see engine.rerun)
        self._lock = threading.Lock()

    def execute(self, prompt: dict[str, Any], prompt_id: str, listener: ExecutionListener | None = None,
                extra_data: dict[str, Any] | None = None, outputs: Iterable[str] | None = None,
                interrupt: InterruptFlag | None = None, force: bool = False) -> ExecutionOutcome:
        """Validate and run `prompt`; never raises for node failures (see outcome.status)."""
        with self._lock:
            run = _PromptRun(self, prompt, prompt_id, listener, extra_data or {}, interrupt, force)
            return run.execute(outputs)

    def _instance(self, node_id: str, definition: NodeDefinition) -> Any:
        """The node's instance, reused per node id while its class stays the same, as ComfyUI
        does (nodes may keep state)."""
        instance = self._instances.get(node_id)
        if type(instance) is not definition.node_class:
            instance = self._instances[node_id] = definition.node_class()
            if len(self._instances) > _INSTANCE_CACHE_SIZE:
                self._instances.popitem(last=False)
        self._instances.move_to_end(node_id)
        return instance

    def reset(self) -> None:
        """Forget cached outputs, node instances and fingerprints (ComfyUI's free_memory)."""
        self.cache.clear()
        self._instances.clear()
        self._fingerprints.clear()


@dataclass(slots=True, eq=False, repr=False)
class _Node:
    """One valid node's state within a prompt run."""

    id: str
    definition: NodeDefinition
    inputs: dict[str, Any]  # validated: constants and [source id, slot] links
    sources: list[_Node] = field(default_factory=list)  # linked sources, each once
    strong_sources: list[_Node] = field(default_factory=list)  # the sources of its non-lazy inputs
    key: int = 0  # issued by the cache's KeyTable
    fingerprint: bytes = b""  # its serialised key material
    target: bool = False  # an output node this prompt asks for
    forced: bool = False
    entry: CacheEntry | None = None  # its cache entry, pinned for this prompt
    outputs: Outputs | None = None  # once run or served
    waiting: int | None = None  # sources still awaited; None while not scheduled
    waiters: list[_Node] | None = None  # scheduled nodes waiting for this one

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
        self.extra_data = extra_data
        self.interrupt = interrupt
        self.force_all = bool(force or extra_data.get("force"))
        self.force_nodes = {str(n) for n in extra_data.get("force_nodes", ()) or ()}
        self.outcome = ExecutionOutcome(prompt_id, "success")
        self.events = PromptEvents(prompt_id, listener, self.outcome.messages)
        self.prompt: dict[str, dict[str, Any]] = {}  # the validated prompt
        self.nodes: dict[str, _Node] = {}  # the valid nodes, sources before consumers
        self.local_by_key: dict[int, CacheEntry] = {}  # this prompt's results, whatever the cache keeps
        self.consumers: dict[int, int] | None = None  # uses left per key, with --cache-none only
        self.holders: dict[int, list[_Node]] = {}
        self.pending_count = 0
        self.ready: list[_Node] = []
        self.ready_outputs: list[_Node] = []  # run first, as ComfyUI does

    def _report(self, node_id: str, state: str, reason: str) -> None:
        self.outcome.run_report[node_id] = {"state": state, "reason": reason}
        self.events.node_report(node_id, state, reason)

    def _finished(self, node_id: str, ui: dict[str, Any] | None) -> None:
        if ui:
            self.outcome.outputs[node_id] = ui
        self.events.finished(node_id, ui)

    # ---- top level ----------------------------------------------------------------------
    def execute(self, outputs: Iterable[str] | None) -> ExecutionOutcome:
        self.events.message("execution_start", {"prompt_id": self.prompt_id,
                                                "timestamp": failures.timestamp()})
        try:
            with using_services(self.executor.services), callrules.inference_mode():
                if not self._plan(outputs):
                    return self.outcome
                self._run_loop()
                self._finish_report()
                self.events.emit("lg.run_report", {"prompt_id": self.prompt_id,
                                                   "nodes": self.outcome.run_report})
                self.events.message("execution_success", {"prompt_id": self.prompt_id,
                                                          "timestamp": failures.timestamp()})
        except _Stop as stop:
            self.outcome.status = stop.status
        finally:  # executed = the nodes that ran or were served
            rerun.remember(self.executor._fingerprints,
                           {node_id: self.nodes[node_id].fingerprint for node_id in self.outcome.executed})
        return self.outcome

    def _plan(self, outputs: Iterable[str] | None) -> bool:
        """Validate, key, look up and schedule the prompt; False when validation failed."""
        validation = validate_prompt(self.original_prompt, self.executor.registry, partial_targets=outputs)
        self.outcome.node_errors = validation.node_errors
        if not validation.ok:
            error = {**(validation.error or {}), "node_errors": validation.node_errors}
            self.outcome.status, self.outcome.error = "error", error
            self.events.message("execution_error",
                                failures.validation_failure(self.prompt_id, error, validation.node_errors))
            return False
        self.prompt = validation.prompt
        cached = self._build_nodes(validation.order, validation.definitions)
        for output in validation.good_outputs:
            self.nodes[output].target = True
        if not self.cache.enabled:
            self._count_consumers()
        self.events.message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id,
                                                 "timestamp": failures.timestamp()})
        for output in validation.good_outputs:
            self._add(self.nodes[output])
        self.events.emit("lg.plan", {"prompt_id": self.prompt_id, "cached": cached,  # lazy inputs may add more
                                     "pending": [n.id for n in self.nodes.values() if n.waiting is not None]})
        return True

    def _build_nodes(self, order: list[str], definitions: dict[str, NodeDefinition]) -> list[str]:
        """One record per valid node, sources first, with the cache entry it may be served from
        (looked up once, pinned for this prompt). Returns the ids found in the cache."""
        cached: list[str] = []
        for node_id in order:
            spec = self.prompt[node_id]
            node = self.nodes[node_id] = self._record(node_id, definitions[spec["class_type"]], spec["inputs"])
            if self.force_all or node_id in self.force_nodes or any(s.forced for s in node.sources):
                node.forced = True  # forcing a node re-runs everything downstream of it too
                continue
            node.entry = self.cache.get(node.key)
            if node.entry is not None:
                cached.append(node_id)
        return cached

    def _record(self, node_id: str, definition: NodeDefinition, inputs: dict[str, Any]) -> _Node:
        """A node's record: its sources (already recorded) and its key material, which names
        constants by value and sources by key and slot, so node ids never matter."""
        node = _Node(node_id, definition, inputs)
        parts: list[tuple[str, Any]] = []
        strong: set[_Node] = set()
        for name in definition.inputs:
            if name not in inputs:
                continue
            value = inputs[name]
            if type(value) is list:  # a link [source id, slot]
                source = self.nodes[value[0]]
                parts.append((name, (source.key, value[1])))
                if source not in node.sources:
                    node.sources.append(source)
                if name not in definition.lazy_inputs:
                    strong.add(source)
            else:
                parts.append((name, cachekeys.constant_token(value)))
        node.strong_sources = [source for source in node.sources if source in strong]
        changed = (callrules.is_changed(definition, inputs, self._hidden(node_id, definition), node_id)
                   if definition.is_changed else None)
        ident = node_id if (definition.not_idempotent or definition.has_unique_id) else None
        node.fingerprint = cachekeys.serialize((definition.name, ident, changed, tuple(parts)))
        node.key = self.cache.keys.key(node.fingerprint)
        return node

    def _finish_report(self) -> None:
        """Nodes that neither ran nor were served: cached but not needed, or not needed at all."""
        report = self.outcome.run_report
        for node in self.nodes.values():
            if node.id not in report:
                report[node.id] = ({"state": "skipped", "reason": "not needed"} if node.entry is None
                                   else {"state": "cached", "reason": "cached"})

    # ---- scheduling ---------------------------------------------------------------------
    def _resolve_cached(self, node: _Node, in_prompt_only: bool = False) -> bool:
        """Serve a node from this prompt's results or the cache (pins the value for this prompt)."""
        if node.forced:
            return False
        entry = self.local_by_key.get(node.key)
        if entry is not None:
            if self.consumers is not None:
                self._used(node.key)  # a duplicate took its copy
        elif in_prompt_only or node.entry is None:
            return False
        else:
            entry = node.entry
        node.outputs = entry.outputs
        self.outcome.executed.append(node.id)
        self._report(node.id, "cached", "cached")
        if node.target:
            self._finished(node.id, entry.ui)
        return True

    def _add(self, root: _Node) -> None:
        """Schedule `root` and the uncached sources it needs (iterative: deep chains are fine)."""
        if root.outputs is not None or root.waiting is not None or self._resolve_cached(root):
            return
        stack = [root]
        while stack:  # nodes pushed by _wait_for are known not to be cached
            node = stack.pop()
            if node.outputs is not None or node.waiting is not None:
                continue
            node.waiting = self._wait_for(node, node.strong_sources, stack)
            self.pending_count += 1
            if node.waiting == 0:
                (self.ready_outputs if node.target else self.ready).append(node)

    def _wait_for(self, node: _Node, sources: list[_Node], stack: list[_Node]) -> int:
        """Register `node` as waiting on its unresolved `sources`; those not yet scheduled are
        pushed on `stack`. Returns how many it waits for."""
        waiting = 0
        for source in sources:
            if source.outputs is not None or (source.waiting is None and self._resolve_cached(source)):
                continue
            if source.waiters is None:
                source.waiters = []
            source.waiters.append(node)
            waiting += 1
            if source.waiting is None:
                stack.append(source)
        return waiting

    def _complete(self, node: _Node, outputs: Outputs) -> None:
        node.outputs = outputs
        if node.waiting is not None:
            node.waiting = None
            self.pending_count -= 1
        waiters, node.waiters = node.waiters or [], None
        for waiter in waiters:
            waiter.waiting -= 1
            if waiter.waiting == 0:
                (self.ready_outputs if waiter.target else self.ready).append(waiter)
        if self.consumers is not None:
            for source in node.sources:
                self._used(source.key)

    def _count_consumers(self) -> None:
        """--cache-none: count the uses of each value (by key, so duplicates still share one)."""
        uses: dict[int, int] = {}
        for node in self.nodes.values():
            if node.key in self.holders:
                self.holders[node.key].append(node)
                uses[node.key] = uses.get(node.key, 0) + 1  # a duplicate will take the value once
            else:
                self.holders[node.key] = [node]
            for source in node.sources:
                uses[source.key] = uses.get(source.key, 0) + 1
        self.consumers = uses

    def _used(self, key: int) -> None:
        """One use of a value is over; free it after the last (only when the cache keeps nothing)."""
        assert self.consumers is not None
        left = self.consumers[key] = self.consumers.get(key, 0) - 1
        holders = self.holders.get(key, ())
        if left > 0 or any(holder.target for holder in holders):
            return
        self.local_by_key.pop(key, None)
        for holder in holders:
            holder.outputs = None

    def _run_loop(self) -> None:
        while self.ready_outputs or self.ready:
            self._execute_node((self.ready_outputs or self.ready).pop())
        if self.pending_count:
            stuck = sorted(node.id for node in self.nodes.values() if node.waiting is not None)
            self._fail(stuck[0], DependencyCycleError(stuck), {})

    # ---- running one node ---------------------------------------------------------------
    def _execute_node(self, node: _Node) -> None:
        node_id, definition = node.id, node.definition
        if self.interrupt is not None and self.interrupt.is_set():
            self._interrupted(node_id, definition)
        if node.key in self.local_by_key and self._resolve_cached(node, in_prompt_only=True):
            self._complete(node, node.outputs)  # an identical node finished meanwhile
            return
        self.events.executing(node_id)
        inputs: dict[str, list[Any]] = {}
        try:
            instance = self.executor._instance(node_id, definition)
            inputs = self._gather(node)
            if definition.has_lazy_check and self._needs_lazy_inputs(node, instance, inputs):
                return  # re-queued once the requested inputs are ready
            reason = rerun.reason(self.executor._fingerprints.get(node_id), node.fingerprint, node.forced,
                                  self.cache.enabled)
            outputs, ui = self._call(node, instance, inputs)
        except InterruptedByUser:
            self._interrupted(node_id, definition)
        except (_Stop, KeyboardInterrupt):
            raise
        except BaseException as exc:  # even SystemExit from a node must not end the process
            self._fail(node_id, exc, inputs)
        if callrules.has_blocker(outputs):
            self.cache.discard(node.key)  # blocked results depend on run-time decisions, not on the key
            self.local_by_key[node.key] = CacheEntry(outputs, ui, 0)
        else:
            self.local_by_key[node.key] = self.cache.put(node.key, outputs, ui)
        self.outcome.executed.append(node_id)
        self._report(node_id, "ran", reason)
        self._finished(node_id, ui)
        self._complete(node, outputs)

    def _hidden(self, node_id: str, definition: NodeDefinition) -> dict[str, Any]:  # PROMPT, UNIQUE_ID, ...
        return callrules.hidden_values(definition.hidden, node_id, self.original_prompt, self.extra_data)

    def _gather(self, node: _Node) -> dict[str, list[Any]]:
        return callrules.gather(node.definition.inputs, node.inputs, lambda source: self.nodes[source].outputs,
                                self._hidden(node.id, node.definition))

    def _map(self, node: _Node, method: Callable[..., Any], inputs: dict[str, list[Any]],
             on_blocked: Callable[[ExecutionBlocker], Any] | None) -> list[Any]:
        """callrules.call_mapped inside the node's context (progress, interrupt, services)."""
        context = NodeContext(self.prompt_id, node.id, self.executor.services, self.interrupt,
                              functools.partial(self.events.progress, node.id))
        with node_context(context):
            return callrules.call_mapped(method, inputs, node.definition.input_is_list, self.interrupt,
                                         on_blocked)

    def _call(self, node: _Node, instance: Any, inputs: dict[str, list[Any]]) -> tuple[Outputs, dict[str, Any] | None]:
        """Call the node and merge its results; --debug-mutation-check also compares its inputs
        before and after the call."""
        definition, label = node.definition, f"node {node.id} ({node.definition.name})"
        records = (mutation.snapshot({k: v for k, v in inputs.items() if k in definition.inputs})
                   if self.executor.mutation_check else None)
        returns = self._map(node, getattr(instance, definition.function), inputs,
                            functools.partial(self._blocked, node))
        path = mutation.find_mutation(records) if records else None
        if path is not None:
            for source in node.sources:  # the shared values it changed are wrong now
                self.cache.discard(source.key)
                self.local_by_key.pop(source.key, None)
            raise InputMutationError(f"{label} modified its input {path} in place; inputs may be shared "
                                     "with the cache and other nodes: clone a value before changing it")
        return callrules.merge(returns, definition.outputs, label)

    def _needs_lazy_inputs(self, node: _Node, instance: Any, inputs: dict[str, list[Any]]) -> bool:
        """Ask check_lazy_status which lazy inputs it needs; schedule them if unevaluated."""
        while True:
            answers = self._map(node, instance.check_lazy_status, inputs, None)
            sources = [self.nodes[source_id] for source_id in callrules.lazy_sources(answers, node.inputs)
                       if source_id in self.nodes and self.nodes[source_id].outputs is None]
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

    def _blocked(self, node: _Node, blocker: ExecutionBlocker) -> ExecutionBlocker:
        """A call stopped by a blocker: one execution_error event if it carries a message."""
        if blocker.message is None:
            return blocker
        self.events.emit("execution_error", failures.blocked(
            self.prompt_id, node.id, node.definition.name, self.outcome.executed, blocker.message))
        return ExecutionBlocker(None)

    # ---- failures -----------------------------------------------------------------------
    def _interrupted(self, node_id: str, definition: NodeDefinition) -> None:
        self.events.message("execution_interrupted", failures.interrupted(
            self.prompt_id, node_id, definition.name, self.outcome.executed))
        self.outcome.error = {"type": "interrupted", "node_id": node_id, "node_type": definition.name,
                              "exception_message": "Interrupted by the user"}
        raise _Stop("interrupted")

    def _fail(self, node_id: str, exc: BaseException, inputs: dict[str, list[Any]]) -> None:
        node_type = self.prompt.get(node_id, {}).get("class_type")
        executed = self.outcome.executed
        record = failures.node_failure(self.prompt_id, node_id, node_type, exc, executed, inputs,
                                       [n for n in executed if self.nodes[n].outputs is not None])
        log.error("node %s (%s) failed: %s", node_id, node_type, exc)
        self.events.progress_state(node_id, "error", 0, 1)
        self.events.message("execution_error", record)
        self.outcome.error = record
        raise _Stop("error")
