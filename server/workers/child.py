"""The worker process's side: build the runtime once, then run the prompts the server sends.

Messages are `(tag, payload)` tuples on one duplex pipe. Server → worker: `run`, `free`, `stop`.
Worker → server: `ready`, `failed` (could not start), then per job any number of `event` and
`preview`, closed by exactly one `outcome` or `crashed` (the executor itself raised); `freed`
answers `free`. Interrupts travel on a shared Event so they reach a node between two messages.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import traceback
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from server.workers.recipe import RuntimeRecipe

log = logging.getLogger("latentgraph.worker")


class SharedInterrupt:
    """The executor's InterruptFlag interface over the Event the server sets."""

    __slots__ = ("_event",)

    def __init__(self, event: Event) -> None:
        self._event = event

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


class PipeListener:
    """Engine listener that forwards each event and preview to the server, in order."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def on_event(self, event: str, data: dict[str, Any]) -> None:
        self._conn.send(("event", (event, data)))

    def on_preview(self, prompt_id: str, node_id: str, image_format: str, image: bytes) -> None:
        self._conn.send(("preview", (prompt_id, node_id, image_format, image)))


def describe(runtime: Any) -> dict[str, Any]:
    """What /system_stats shows of this worker: its process and device."""
    info: dict[str, Any] = {"pid": os.getpid()}
    manager = getattr(runtime.services, "model_manager", None)
    device = getattr(manager, "device", None)
    if device is not None:
        info["device"] = str(device)
    return info


def cache_stats(runtime: Any) -> dict[str, Any]:
    stats = dict(runtime.cache.stats())
    manager = runtime.services.model_manager
    stats["models"] = [] if manager is None else [
        {"name": m.name, "size_bytes": m.size_bytes, "on_device": m.on_device}
        for m in manager.loaded_models()]
    return stats


def free(runtime: Any, unload_models: bool, free_memory: bool) -> None:
    """What POST /free does, between prompts (as the in-process server does it)."""
    if free_memory:
        runtime.executor.reset()
    manager = runtime.services.model_manager
    if (unload_models or free_memory) and manager is not None:
        manager.unload_all()
    if free_memory:
        gc.collect()


def portable_exception(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling (the server words it as in-process),
    else a RuntimeError with its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def worker_main(recipe: RuntimeRecipe, conn: Connection, interrupt: Event, log_level: int,
                environment: dict[str, str]) -> None:
    """Entry point of the spawned process."""
    os.environ.update(environment)  # e.g. CUDA_VISIBLE_DEVICES, before torch is imported
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the server's to handle
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        runtime = recipe.build()
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
        return
    conn.send(("ready", {**describe(runtime), "cache": cache_stats(runtime)}))
    listener, flag = PipeListener(conn), SharedInterrupt(interrupt)
    while True:
        try:
            tag, payload = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if tag == "stop":
            return
        if tag == "free":
            free(runtime, *payload)
            conn.send(("freed", cache_stats(runtime)))
        elif tag == "run":
            try:
                outcome = runtime.executor.execute(listener=listener, interrupt=flag, **payload)
            except BaseException as exc:  # noqa: BLE001 - reported to the server, which words it
                log.error("prompt %s failed outside a node:\n%s", payload.get("prompt_id"),
                          traceback.format_exc())
                conn.send(("crashed", portable_exception(exc)))
            else:
                conn.send(("outcome", (outcome, cache_stats(runtime))))
