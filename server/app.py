"""Builds the aiohttp application around a Runtime: routes, guards, queue, hub and worker.

`build_app(runtime, config)` is what `server.main` serves and what the tests start on a
loopback port; it creates no globals, so several servers can live in one process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from server.context import CONTEXT, EngineRuntime, ServerConfig, ServerContext
from server.hub import WebSocketHub
from server.jobs import JobQueue
from server.routes import files, frontend, info, jobs, packs, queue, static, userdata, ws
from server.security import (LOOPBACK_NAMES, SecurityPolicy, error_middleware,
                             security_headers_middleware, security_middleware)
from server.store import JobStore
from server.worker import Worker
from server.workers.process import ProcessExecutor

log = logging.getLogger(__name__)

DATABASE_NAME = "latentgraph-queue.sqlite3"
API_ROUTES = (*queue.ROUTES, *jobs.ROUTES, *info.ROUTES, *frontend.ROUTES, *files.ROUTES,
              *userdata.ROUTES, *ws.ROUTES, *packs.ROUTES)


def free_memory_function(runtime: EngineRuntime) -> Callable[[bool, bool], None]:
    """What POST /free does, between prompts: drop cached outputs and/or unload models."""

    def free(unload_models: bool, free_memory: bool) -> None:
        if free_memory:
            runtime.executor.reset()  # cached outputs, node instances and run fingerprints
        manager = runtime.services.model_manager  # None when the runtime has no models (tests)
        if (unload_models or free_memory) and manager is not None:
            manager.unload_all()
        if free_memory:
            gc.collect()

    return free


def policy_from_config(config: ServerConfig) -> SecurityPolicy:
    return SecurityPolicy(token=config.token,
                          allowed_host_names=LOOPBACK_NAMES | config.allowed_host_names,
                          cors_origins=config.cors_origins)


def build_app(runtime: EngineRuntime, config: ServerConfig) -> web.Application:
    """The application; the worker thread starts with the app and stops with it."""
    paths = runtime.services.paths
    store = JobStore(Path(paths.user_directory) / DATABASE_NAME)
    for job in store.recover_after_crash():
        log.warning("job %s was running when the server stopped; marked failed", job.prompt_id)
    hub = WebSocketHub(None)
    job_queue = JobQueue(store, on_change=lambda: hub.post(hub.status_changed))
    worker_process = ProcessExecutor(config.worker_recipe) if config.worker_recipe else None
    if worker_process is not None:
        worker = Worker(job_queue, hub, worker_process, worker_process.free)
    else:
        worker = Worker(job_queue, hub, runtime.executor, free_memory_function(runtime))
    ctx = ServerContext(runtime=runtime, config=config, queue=job_queue, hub=hub, worker=worker,
                        worker_process=worker_process)
    hub.status_provider = ctx.status

    app = web.Application(
        client_max_size=config.max_upload_bytes + 1024 * 1024,
        middlewares=[error_middleware, security_headers_middleware(),
                     security_middleware(policy_from_config(config))])
    app[CONTEXT] = ctx
    for method, path, handler in API_ROUTES:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
    for method, path, handler in static.STATIC_ROUTES:
        app.router.add_route(method, path, handler)
    _attach_pack_server(runtime, app, hub)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    return app


def _attach_pack_server(runtime: EngineRuntime, app: web.Application, hub: WebSocketHub) -> None:
    """Routes that node packs added through `PromptServer.instance.routes` (same guards as ours),
    and their `send_sync` messages through our hub."""
    pack_server = runtime.services.compat.get("prompt_server")
    if pack_server is None:
        return
    pack_server.bind(lambda event, data, sid: hub.post(hub.send, event, data, sid))
    try:
        app.router.add_routes(pack_server.routes)
        for resource in pack_server.app.router.resources():
            app.router.register_resource(resource)
    except (RuntimeError, ValueError) as exc:  # e.g. a pack route clashing with one of ours
        log.error("routes added by node packs were not installed: %s", exc)


async def _start(app: web.Application) -> None:
    ctx = app[CONTEXT]
    ctx.hub.loop = asyncio.get_running_loop()
    ctx.started = ctx.hub.loop.time()
    if ctx.worker_process is not None:  # warm before the first job; that job waits if need be
        threading.Thread(target=_start_worker_process, args=(ctx.worker_process,),
                         daemon=True).start()
    ctx.worker.start()


def _start_worker_process(worker_process: ProcessExecutor) -> None:
    try:
        worker_process.start()
    except Exception:  # the first job retries and reports why to its client
        log.exception("the worker process did not start")


async def _shutdown(app: web.Application) -> None:
    await app[CONTEXT].hub.close_all()


async def _cleanup(app: web.Application) -> None:
    ctx = app[CONTEXT]
    finished = await asyncio.to_thread(ctx.worker.stop, 15.0)
    if ctx.worker_process is not None:
        await asyncio.to_thread(ctx.worker_process.close)
    if finished:
        ctx.queue.store.close()
        return
    job = ctx.queue.running()
    if job is not None:  # a node that never checks for interrupts: record why it ended
        log.warning("prompt %s did not stop within 15 s; recording it as interrupted",
                    job.prompt_id)
        ctx.queue.store.finish(job.prompt_id, "interrupted", stopped_result(job.prompt_id),
                               time.time())


def stopped_result(prompt_id: str) -> dict[str, Any]:
    reason = ("The server was stopped while this job was running and the node did not stop in "
              "time. Queue it again if you want it.")
    message = ["execution_interrupted", {"prompt_id": prompt_id, "node_id": None,
                                         "node_type": None, "executed": [],
                                         "timestamp": int(time.time() * 1000)}]
    return {"outputs": {}, "status": {"status_str": "error", "completed": False,
                                      "messages": [message]},
            "meta": {}, "lg": {"state": "interrupted", "reason": reason, "run_report": {}}}
