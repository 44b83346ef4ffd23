"""GET /jobs and /jobs/{id}: ComfyUI's unified job list, which its official frontend's queue
panel and history read instead of /queue and /history.

Statuses map from our job states: pending -> `pending`, running -> `in_progress`, success ->
`completed`, error/failed -> `failed`, interrupted/cancelled -> `cancelled`. Times are
milliseconds since the epoch, as ComfyUI sends them. Pending and running jobs come from the
in-memory queue, finished ones from the store, merged into one ordered page.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterable

from aiohttp import web

from server.context import CONTEXT, ServerContext
from server.jobs import Job
from server.jsonsafe import json_response
from server.requests import BadRequest, query_int
from server.store import StoredJob

JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
_STATES_BY_STATUS = {"completed": ("success",), "failed": ("error", "failed"),
                     "cancelled": ("interrupted", "cancelled")}
_STATUS_BY_STATE = {"pending": "pending", "running": "in_progress", "success": "completed",
                    "error": "failed", "failed": "failed", "interrupted": "cancelled",
                    "cancelled": "cancelled"}
_MEDIA_KINDS = ("images", "video", "audio", "animated", "3d")
MAX_PAGE = 1000


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _workflow_id(stored: StoredJob) -> str | None:
    workflow = (stored.extra_data.get("extra_pnginfo") or {}).get("workflow")
    value = workflow.get("id") if isinstance(workflow, dict) else None
    return value if isinstance(value, str) else None


def _output_items(outputs: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(node id, media kind, item) for every file a node delivered."""
    for node_id, output in outputs.items():
        if not isinstance(output, dict):
            continue
        for kind in _MEDIA_KINDS:
            for item in output.get(kind) or ():
                if isinstance(item, dict) and "filename" in item:
                    yield str(node_id), kind, item


def _preview(outputs: dict[str, Any]) -> dict[str, Any] | None:
    """The first saved (output-type) file, else the first file at all, as the card's thumbnail."""
    items = list(_output_items(outputs))
    chosen = next((i for i in items if i[2].get("type") == "output"), items[0] if items else None)
    if chosen is None:
        return None
    node_id, kind, item = chosen
    return {**item, "nodeId": node_id, "mediaType": kind}


def _execution_error(result: dict[str, Any]) -> dict[str, Any] | None:
    for event, data in reversed(result.get("status", {}).get("messages", [])):
        if event == "execution_error" and isinstance(data, dict):
            return {"node_id": str(data.get("node_id") or ""), "node_type":
                    str(data.get("node_type") or ""), "exception_message":
                    str(data.get("exception_message") or ""), "exception_type":
                    str(data.get("exception_type") or ""), "traceback":
                    list(data.get("traceback") or []), "current_inputs":
                    data.get("current_inputs") or {}, "current_outputs":
                    data.get("current_outputs") or {}, **{k: data[k] for k in
                    ("prompt_id", "timestamp", "executed") if k in data}}
    return None


def job_item(stored: StoredJob) -> dict[str, Any]:
    """One job in the list shape (`zRawJobListItem` in the ComfyUI frontend)."""
    result = stored.result or {}
    outputs = result.get("outputs") or {}
    return {"id": stored.prompt_id, "status": _STATUS_BY_STATE.get(stored.state, "failed"),
            "priority": stored.queue_item()[0], "create_time": _ms(stored.created),
            "execution_start_time": _ms(stored.started),
            "execution_end_time": _ms(stored.finished),
            "preview_output": _preview(outputs),
            "outputs_count": sum(1 for _ in _output_items(outputs)),
            "execution_error": _execution_error(result), "workflow_id": _workflow_id(stored)}


def job_detail(stored: StoredJob) -> dict[str, Any]:
    """The detail shape: the list fields plus the prompt, outputs and status for re-running."""
    result = stored.result or {}
    return {**job_item(stored),
            "workflow": {"prompt": stored.prompt, "extra_data": stored.extra_data},
            "outputs": result.get("outputs") or {},
            "update_time": _ms(stored.finished or stored.started or stored.created),
            "execution_status": result.get("status"), "execution_meta": result.get("meta") or {}}


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


def _statuses(request: web.Request) -> set[str]:
    raw = request.query.get("status", "")
    wanted = {part.strip() for part in raw.split(",") if part.strip()} or set(JOB_STATUSES)
    unknown = wanted - set(JOB_STATUSES)
    if unknown:
        raise BadRequest("invalid_parameter", f"Unknown status {sorted(unknown)}; expected a "
                         f"comma-separated list of {', '.join(JOB_STATUSES)}.", parameter="status")
    return wanted


def _live_jobs(ctx: ServerContext, statuses: set[str]) -> list[Job]:
    jobs: list[Job] = []
    running = ctx.queue.running()
    if running is not None and "in_progress" in statuses:
        jobs.append(running)
    if "pending" in statuses:
        jobs.extend(ctx.queue.pending_jobs())
    return jobs


def _sort_key(by_duration: bool, now: float):
    def key(stored: StoredJob) -> tuple[float, int]:
        if by_duration:
            end = stored.finished if stored.finished is not None else now
            return (end - stored.started if stored.started is not None else 0.0, stored.seq)
        return (stored.created, stored.seq)
    return key


async def list_jobs(request: web.Request) -> web.Response:
    """GET /jobs?status=a,b&limit=&offset=&sort_by=created_at|execution_duration
    &sort_order=asc|desc&workflow_id=: one page of jobs and its pagination."""
    ctx = _ctx(request)
    statuses = _statuses(request)
    limit = query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE)
    offset = query_int(request, "offset", 0, minimum=0)
    assert limit is not None and offset is not None
    sort_by = request.query.get("sort_by", "created_at")
    sort_order = request.query.get("sort_order", "desc")
    if sort_by not in ("created_at", "execution_duration") or sort_order not in ("asc", "desc"):
        raise BadRequest("invalid_parameter", "sort_by is created_at or execution_duration; "
                         "sort_order is asc or desc.", parameter="sort_by")
    workflow_id = request.query.get("workflow_id") or None
    by_duration, newest_first = sort_by == "execution_duration", sort_order == "desc"

    live = [job.stored for job in _live_jobs(ctx, statuses)]
    if workflow_id is not None:
        live = [stored for stored in live if _workflow_id(stored) == workflow_id]
    states = tuple(state for status in statuses for state in _STATES_BY_STATUS.get(status, ()))
    finished, finished_total = await asyncio.to_thread(
        ctx.queue.store.finished_page, states, offset + limit, 0, by_duration, newest_first,
        workflow_id)
    done = {stored.prompt_id for stored in finished}  # a job finishing right now: once
    live = [stored for stored in live if stored.prompt_id not in done]
    merged = sorted(live + finished, key=_sort_key(by_duration, time.time()),
                    reverse=newest_first)
    page = merged[offset:offset + limit]
    total = len(live) + finished_total
    return json_response({"jobs": [job_item(stored) for stored in page],
                          "pagination": {"offset": offset, "limit": limit, "total": total,
                                         "has_more": offset + len(page) < total}})


async def get_job(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    prompt_id = request.match_info["job_id"]
    live = ctx.queue.find_active(prompt_id)
    stored = live.stored if live is not None else ctx.queue.store.get(prompt_id)
    if stored is None:
        raise BadRequest("unknown_job", f"No job with id {prompt_id!r}.", status=404)
    return json_response(job_detail(stored))


ROUTES = [("GET", "/jobs", list_jobs), ("GET", "/jobs/{job_id}", get_job)]
