"""Reading request input defensively: bounded JSON bodies and typed query parameters.

Handlers call these instead of `request.json()` so that malformed JSON, wrong types, huge
bodies and absurd numbers all become a 4xx with a structured error, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.jsonsafe import json_response

MAX_JSON_BYTES = 64 * 1024 * 1024   # prompts embed the UI workflow; generous but bounded
MAX_ID_LENGTH = 200


class BadRequest(Exception):
    """A refused request; the error middleware turns it into `{"error": {...}}` with `status`."""

    def __init__(self, error_type: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.payload: dict[str, Any] = {"error": {"type": error_type, "message": message, **extra}}

    def response(self) -> web.Response:
        return json_response(self.payload, status=self.status)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, or a 413 as soon as it grows past `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest("body_too_large", f"Request body exceeds {limit} bytes.", status=413)
    chunks, size = [], 0
    while chunk := await request.content.read(1 << 16):
        size += len(chunk)
        if size > limit:
            raise BadRequest("body_too_large", f"Request body exceeds {limit} bytes.", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: web.Request, *, allow_empty: bool = False,
                    limit: int = MAX_JSON_BYTES) -> Any:
    """Parse the body as JSON (no NaN/Infinity), refusing bodies larger than `limit`."""
    raw = await read_body(request, limit)
    if not raw.strip():
        if allow_empty:
            return None
        raise BadRequest("invalid_json", "Request body is empty; a JSON object was expected.")
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise BadRequest("invalid_json", f"Request body is not valid JSON: {message}") from None


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    body = await read_json(request, allow_empty=allow_empty)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest("invalid_json", "Request body must be a JSON object.")
    return body


def query_int(request: web.Request, name: str, default: int | None, *,
              minimum: int | None = None, maximum: int = 10**9) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("invalid_parameter", f"Query parameter {name!r} must be an integer.",
                         parameter=name) from None
    if (minimum is not None and value < minimum) or abs(value) > maximum:
        raise BadRequest("invalid_parameter", f"Query parameter {name!r} is out of range.",
                         parameter=name)
    return value


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def optional_id(value: Any, field: str) -> str | None:
    """A client-chosen identifier (prompt_id, client_id): a short printable string or absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH \
            or not value.isprintable() or "/" in value or "\\" in value or ".." in value:
        raise BadRequest("invalid_parameter",
                         f"{field!r} must be a non-empty printable string of at most "
                         f"{MAX_ID_LENGTH} characters, without '/', '\\' or '..'.", parameter=field)
    return value


def id_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("invalid_parameter", f"{field!r} must be a list of prompt ids.",
                         parameter=field)
    return value
