"""Prompt, queue, history, interrupt and free routes (ComfyUI's), plus our job-control routes.

Beyond ComfyUI (all under /api/lg, documented in server/API.md):
- GET  /lg/jobs                    recent jobs of every state, newest first
- GET  /lg/jobs/{id}               one job: state, priority, timings, per-node run report
- POST /lg/jobs/{id}/cancel        cancel a pending job, or interrupt it if it is running
- POST /lg/jobs/{id}/priority      {"number": x} ("priority" also accepted), {"front": true} or
                                   {"back": true}: move a pending job
- POST /lg/jobs/{id}/retry         queue a finished job's prompt again under a new id
- POST /lg/queue/pause, /resume    stop starting new jobs (the running one finishes) / go on
- GET  /lg/cache                   output-cache statistics;  POST /lg/cache/clear empties it
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from typing import Any

from aiohttp import web

from engine.validation import validate_prompt
from server.context import CONTEXT, ServerContext
from server.jobs import SENSITIVE_EXTRA_DATA_KEYS, Job
from server.jsonsafe import json_response
from server.requests import BadRequest, id_list, optional_id, query_int, read_json_object
from server.store import StoredJob, finite_number

log = logging.getLogger(__name__)


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


def _prompt_error(error_type: str, message: str, details: str = "") -> web.Response:
    return json_response({"error": {"type": error_type, "message": message,
                                        "details": details, "extra_info": {}},
                              "node_errors": {}}, status=400)


# -- /prompt -----------------------------------------------------------------------------------
async def get_prompt(request: web.Request) -> web.Response:
    return json_response(_ctx(request).status())


async def post_prompt(request: web.Request) -> web.Response:
    return await _queue_prompt(_ctx(request), await read_json_object(request))


async def _queue_prompt(ctx: ServerContext, body: dict[str, Any],
                        targets: list[str] | None = None) -> web.Response:
    """Validate and queue one prompt request body (POST /prompt, retry)."""
    if "prompt" not in body or body["prompt"] is None:
        return _prompt_error("no_prompt", "No prompt provided", "No prompt provided")
    pack_server = ctx.runtime.services.compat.get("prompt_server")  # packs' on_prompt handlers
    if pack_server is not None:
        body = pack_server.trigger_on_prompt(body)
    prompt = body["prompt"]
    if not isinstance(prompt, dict) or not prompt:
        return _prompt_error("invalid_prompt", "Invalid prompt: 'prompt' must be a non-empty "
                             "object mapping node ids to {class_type, inputs}.")
    extra_data = body.get("extra_data", {})
    if extra_data is None:
        extra_data = {}
    if not isinstance(extra_data, dict):
        raise BadRequest("invalid_parameter", "'extra_data' must be an object.",
                         parameter="extra_data")
    client_id = optional_id(body.get("client_id", extra_data.get("client_id")), "client_id")
    prompt_id = optional_id(body.get("prompt_id"), "prompt_id") or str(uuid.uuid4())
    if body.get("partial_execution_targets") is not None:
        targets = id_list(body["partial_execution_targets"], "partial_execution_targets")
    number = None
    if body.get("number") is not None:
        number = finite_number(body["number"])
        if number is None:
            raise BadRequest("invalid_parameter", "'number' must be a finite number.",
                             parameter="number")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest("invalid_parameter", "'force' must be true or false.", parameter="force")
    if ctx.queue.knows(prompt_id):
        raise BadRequest("duplicate_prompt_id", f"A job with prompt_id {prompt_id!r} already "
                         "exists; choose another id or leave it out.", status=409)

    try:
        result = await asyncio.to_thread(validate_prompt, prompt, ctx.registry, targets)
    except RecursionError:
        return _prompt_error("invalid_prompt", "Prompt is nested too deeply to validate.")
    except Exception as exc:  # a validator bug or a hostile shape the validator missed
        log.exception("validation raised for prompt %s", prompt_id)
        return _prompt_error("invalid_prompt", "Prompt could not be validated.", str(exc)[:500])
    if not result.ok:
        return json_response({"error": result.error, "node_errors": result.node_errors},
                                 status=400)

    if number is None:
        number = ctx.queue.next_number(front=body.get("front") is True)
    if client_id is not None:
        extra_data["client_id"] = client_id
    secrets = {key: extra_data.pop(key) for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data}
    stored = StoredJob(prompt_id=prompt_id, number=number, prompt=prompt, extra_data=extra_data,
                       outputs_to_execute=list(result.good_outputs), client_id=client_id,
                       force=force)
    try:
        ctx.queue.put(stored, secrets)
    except sqlite3.IntegrityError:  # the same prompt_id raced in from another request
        raise BadRequest("duplicate_prompt_id", f"A job with prompt_id {prompt_id!r} already "
                         "exists; choose another id or leave it out.", status=409) from None
    except ValueError:  # e.g. an unbounded FLOAT input given as 1e999: not storable as JSON
        return _prompt_error("invalid_prompt", "The prompt contains a number that is not finite "
                             "(NaN or Infinity).")
    return json_response({"prompt_id": prompt_id, "number": stored.queue_item()[0],
                              "node_errors": result.node_errors})


# -- /queue --------------------------------------------------------------------------------------
async def get_queue(request: web.Request) -> web.Response:
    queue = _ctx(request).queue
    running = queue.running()
    return json_response({
        "queue_running": [running.stored.queue_item()] if running else [],
        "queue_pending": [job.stored.queue_item() for job in queue.pending_jobs()]})


async def post_queue(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    body = await read_json_object(request)
    if body.get("clear") is True:
        ctx.queue.clear_pending()
    if "delete" in body:
        ctx.queue.delete_pending(id_list(body["delete"], "delete"))
    return web.Response(status=200)


# -- /history ------------------------------------------------------------------------------------
def history_entry(stored: StoredJob) -> dict[str, Any]:
    """ComfyUI's history entry shape, plus our `lg` block (state, run report, timings)."""
    result = stored.result or {}
    lg = dict(result.get("lg", {}))
    lg.update({"queued_at": stored.created, "started_at": stored.started,
               "finished_at": stored.finished})
    return {"prompt": stored.queue_item(), "outputs": result.get("outputs", {}),
            "status": result.get("status", {"status_str": "error", "completed": False,
                                             "messages": []}),
            "meta": result.get("meta", {}), "lg": lg}


async def get_history(request: web.Request) -> web.Response:
    store = _ctx(request).queue.store
    max_items = query_int(request, "max_items", None, minimum=0)
    offset = query_int(request, "offset", -1)
    assert offset is not None
    if offset < 0:
        offset = max(0, store.history_count() - max_items) if max_items is not None else 0
    jobs = await asyncio.to_thread(store.history, max_items, offset)
    return json_response({job.prompt_id: history_entry(job) for job in jobs})


async def get_history_item(request: web.Request) -> web.Response:
    stored = _ctx(request).queue.store.get(request.match_info["prompt_id"])
    if stored is None or stored.finished is None:
        return json_response({})
    return json_response({stored.prompt_id: history_entry(stored)})


async def post_history(request: web.Request) -> web.Response:
    store = _ctx(request).queue.store
    body = await read_json_object(request)
    if body.get("clear") is True:
        store.clear_history()
    if "delete" in body:
        store.delete_history(id_list(body["delete"], "delete"))
    return web.Response(status=200)


# -- /interrupt and /free ------------------------------------------------------------------------
async def post_interrupt(request: web.Request) -> web.Response:
    body = await read_json_object(request, allow_empty=True)
    prompt_id = optional_id(body.get("prompt_id"), "prompt_id")
    job = _ctx(request).queue.interrupt(prompt_id)
    return json_response({"interrupted": job.prompt_id if job else None})


async def post_free(request: web.Request) -> web.Response:
    body = await read_json_object(request, allow_empty=True)
    unload, free = body.get("unload_models", False), body.get("free_memory", False)
    if not isinstance(unload, bool) or not isinstance(free, bool):
        raise BadRequest("invalid_parameter", "'unload_models' and 'free_memory' must be booleans.")
    _ctx(request).worker.request_free(unload, free)
    return web.Response(status=200)


# -- our job control -----------------------------------------------------------------------------
def job_summary(stored: StoredJob, live: Job | None = None) -> dict[str, Any]:
    result = stored.result or {}
    summary: dict[str, Any] = {
        "prompt_id": stored.prompt_id, "state": stored.state,
        "number": stored.queue_item()[0], "client_id": stored.client_id,
        "queued_at": stored.created, "started_at": stored.started,
        "finished_at": stored.finished, "outputs": result.get("outputs", {}),
        "run_report": result.get("lg", {}).get("run_report", {}),
        "error": result.get("lg", {}).get("error"), "reason": result.get("lg", {}).get("reason"),
    }
    if live is not None and live.current_node is not None:
        summary["current_node"] = live.current_node
    return summary


def _lookup(request: web.Request) -> tuple[str, Job | None, StoredJob]:
    prompt_id = request.match_info["prompt_id"]
    live = _ctx(request).queue.find_active(prompt_id)
    stored = live.stored if live else _ctx(request).queue.store.get(prompt_id)
    if stored is None:
        raise BadRequest("unknown_job", f"No job with prompt_id {prompt_id!r}.", status=404)
    return prompt_id, live, stored


async def list_jobs(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    limit = query_int(request, "limit", 100, minimum=1, maximum=10_000)
    assert limit is not None
    live = {job.prompt_id: job for job in ctx.queue.pending_jobs()}
    if (running := ctx.queue.running()) is not None:
        live[running.prompt_id] = running
    jobs = []
    for stored in ctx.queue.store.recent(limit):
        job = live.get(stored.prompt_id)
        jobs.append(job_summary(job.stored if job else stored, job))
    return json_response({"jobs": jobs})


async def get_job(request: web.Request) -> web.Response:
    _, live, stored = _lookup(request)
    return json_response(job_summary(stored, live))


async def cancel_job(request: web.Request) -> web.Response:
    prompt_id, _, _ = _lookup(request)
    outcome, job = _ctx(request).queue.cancel(prompt_id)
    if outcome == "cancelled" and job is not None:
        ctx = _ctx(request)
        data = {"prompt_id": prompt_id, "node_id": None, "node_type": None, "executed": []}
        ctx.hub.send("execution_interrupted", data, job.client_id)
        ctx.hub.send("executing", {"node": None, "prompt_id": prompt_id}, job.client_id)
    if outcome == "finished":
        raise BadRequest("job_finished", f"Job {prompt_id!r} has already finished.", status=409)
    return json_response({"prompt_id": prompt_id, "result": outcome})


async def set_job_priority(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    prompt_id, _, _ = _lookup(request)
    body = await read_json_object(request)
    if body.get("front") is True:
        number = ctx.queue.next_number(front=True)
    elif body.get("back") is True:
        number = ctx.queue.next_number(front=False)
    else:
        number = finite_number(body.get("number", body.get("priority")))
        if number is None:
            raise BadRequest("invalid_parameter", "Send {'number': <finite number>} (lower runs "
                             "first), {'front': true} or {'back': true}.", parameter="number")
    job = ctx.queue.set_number(prompt_id, number)
    if job is None:
        raise BadRequest("job_not_pending", f"Job {prompt_id!r} is not waiting in the queue; only "
                         "pending jobs can be re-prioritised.", status=409)
    return json_response({"prompt_id": prompt_id, "number": job.stored.queue_item()[0],
                              "position": [j.prompt_id for j in ctx.queue.pending_jobs()]
                              .index(prompt_id)})


async def retry_job(request: web.Request) -> web.Response:
    """Queue a finished job's prompt again under a new id (validated again: files may have
    changed). Body (optional): {"client_id", "front", "number"}."""
    ctx = _ctx(request)
    _, live, stored = _lookup(request)
    if live is not None:
        raise BadRequest("job_not_finished", "Only finished jobs can be retried.", status=409)
    body = await read_json_object(request, allow_empty=True)
    payload = {"prompt": stored.prompt, "extra_data": dict(stored.extra_data),
               "client_id": body.get("client_id", stored.client_id),
               "front": body.get("front", False), "force": stored.force}
    if body.get("number") is not None:
        payload["number"] = body["number"]
    payload["extra_data"].pop("client_id", None)
    return await _queue_prompt(ctx, payload, stored.outputs_to_execute)


async def pause_queue(request: web.Request) -> web.Response:
    _ctx(request).queue.set_paused(True)
    return json_response({"paused": True})


async def resume_queue(request: web.Request) -> web.Response:
    _ctx(request).queue.set_paused(False)
    return json_response({"paused": False})


async def get_cache_stats(request: web.Request) -> web.Response:
    """Output-cache counters plus the models the memory manager holds."""
    return json_response(_ctx(request).cache_stats())


async def clear_cache(request: web.Request) -> web.Response:
    _ctx(request).worker.request_free(False, True)
    return json_response({"cleared": True, "note": "The cache is emptied between prompts."})


ROUTES = [
    ("GET", "/prompt", get_prompt), ("POST", "/prompt", post_prompt),
    ("GET", "/queue", get_queue), ("POST", "/queue", post_queue),
    ("GET", "/history", get_history), ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("POST", "/interrupt", post_interrupt), ("POST", "/free", post_free),
    ("GET", "/lg/jobs", list_jobs), ("GET", "/lg/jobs/{prompt_id}", get_job),
    ("POST", "/lg/jobs/{prompt_id}/cancel", cancel_job),
    ("POST", "/lg/jobs/{prompt_id}/priority", set_job_priority),
    ("POST", "/lg/jobs/{prompt_id}/retry", retry_job),
    ("POST", "/lg/queue/pause", pause_queue), ("POST", "/lg/queue/resume", resume_queue),
    ("GET", "/lg/cache", get_cache_stats), ("POST", "/lg/cache/clear", clear_cache),
]
