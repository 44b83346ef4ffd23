"""GET /view and POST /upload/image, /upload/mask: images in input/, output/ and temp/.

Every client path goes through engine.paths.contained_path. /view serves only known image,
audio and video types inline; anything else (HTML, SVG, JS, unknown) is a download with
`application/octet-stream`, and every response carries `nosniff` and a sandboxing CSP, so a file
in output/ can never run script in the server's origin.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.helpers import content_disposition_header

from engine.errors import PathEscapeError
from engine.paths import contained_path
from server.context import CONTEXT, ServerContext
from server.images import (ImageRejected, apply_mask, convert_for_view, decode_image,
                           store_deduplicated, upload_name)
from server.jsonsafe import json_response
from server.requests import BadRequest

INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp",
                          "image/avif", "video/mp4", "video/webm", "audio/mpeg", "audio/wav",
                          "audio/x-wav", "audio/flac", "audio/ogg", "audio/webm"})
VIEW_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
_ANNOTATED = re.compile(r"^(.*) \[(input|output|temp)\]$")
_PREVIEW = re.compile(r"^(webp|jpeg|jpg)(?:;(\d{1,3}))?$")
MAX_FIELD_BYTES = 64 * 1024


def _ctx(request: web.Request) -> ServerContext:
    return request.app[CONTEXT]


def resolve_user_file(ctx: ServerContext, kind: str, subfolder: str, filename: str) -> Path:
    """input/output/temp + subfolder + filename, contained; BadRequest on any escape."""
    try:
        root = ctx.paths.get_directory_by_type(kind)
    except ValueError:
        raise BadRequest("invalid_parameter", "'type' must be input, output or temp.",
                         parameter="type") from None
    try:
        return contained_path(root, subfolder, filename)
    except PathEscapeError as exc:
        raise BadRequest("path_not_allowed", f"Path refused: {exc}", status=403) from None


def _parse_preview(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    match = _PREVIEW.match(value.strip().lower())
    if not match:
        raise BadRequest("invalid_parameter", "'preview' must look like 'webp;90' or 'jpeg;80'.",
                         parameter="preview")
    quality = int(match.group(2) or 90)
    return ("jpeg" if match.group(1) in ("jpeg", "jpg") else "webp", max(1, min(quality, 100)))


async def view(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    filename = request.query.get("filename", "")
    if not filename:
        raise BadRequest("invalid_parameter", "'filename' is required.", parameter="filename")
    kind = request.query.get("type") or "output"
    if (match := _ANNOTATED.match(filename)) is not None:
        filename, kind = match.group(1), match.group(2)
    path = resolve_user_file(ctx, kind, request.query.get("subfolder", ""), filename)
    if not path.is_file():
        raise BadRequest("not_found", "No such file.", status=404)
    channel = request.query.get("channel") or "rgba"
    if channel not in ("rgba", "rgb", "a"):
        raise BadRequest("invalid_parameter", "'channel' must be rgba, rgb or a.",
                         parameter="channel")
    preview = _parse_preview(request.query.get("preview"))
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": VIEW_CSP,
               "Cache-Control": "no-cache"}
    if preview is not None or channel != "rgba":
        try:
            data, mime = await asyncio.to_thread(convert_for_view, path, channel, preview,
                                                 ctx.config.max_image_pixels)
        except ImageRejected as exc:
            raise BadRequest("not_an_image", f"Cannot convert this file: {exc}",
                             status=415) from None
        return web.Response(body=data, content_type=mime, headers=headers)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if mime in INLINE_TYPES:
        headers["Content-Type"] = mime
        headers["Content-Disposition"] = content_disposition_header("inline", filename=path.name)
    else:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = content_disposition_header("attachment",
                                                                    filename=path.name)
    return web.FileResponse(path, headers=headers)


async def _read_upload(request: web.Request, limit: int) -> tuple[dict[str, str], bytes, str]:
    """Stream a multipart upload: small text fields plus one image part, all size-bounded."""
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("invalid_upload", "Send the image as multipart/form-data with an "
                         "'image' file field.", status=415)
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise BadRequest("invalid_upload", f"Malformed multipart body: {exc}") from None
    fields: dict[str, str] = {}
    data, filename = b"", ""
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError) as exc:
            raise BadRequest("invalid_upload", f"Malformed multipart body: {exc}") from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.name == "image":
            data = await _read_part(part, limit)
            filename = part.filename or "image.png"
        else:
            raw = await _read_part(part, MAX_FIELD_BYTES)
            fields[part.name] = raw.decode("utf-8", errors="replace")
    if not data:
        raise BadRequest("invalid_upload", "The 'image' file field is missing or empty.")
    return fields, data, filename


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size > limit:
            raise BadRequest("body_too_large", f"Upload exceeds {limit} bytes.", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _upload_target(ctx: ServerContext, fields: dict[str, str]) -> tuple[str, str, Path]:
    kind = fields.get("type") or "input"
    subfolder = fields.get("subfolder", "")
    directory = resolve_user_file(ctx, kind, subfolder, "")
    return kind, subfolder, directory


def _store_image(ctx: ServerContext, fields: dict[str, str], data: bytes, filename: str,
                 mask: bool) -> dict[str, Any]:
    kind, subfolder, directory = _upload_target(ctx, fields)
    overwrite = fields.get("overwrite", "").lower() in ("true", "1")
    image = decode_image(data, ctx.config.max_image_pixels)
    if mask:
        original_path = _original_ref(ctx, fields.get("original_ref"))
        data = apply_mask(original_path, image, ctx.config.max_image_pixels)
        name = upload_name(filename, "PNG")
    else:
        name = upload_name(filename, str(image.format))
    target = resolve_user_file(ctx, kind, subfolder, name)  # re-check the final name
    stored = store_deduplicated(target.parent, target.name, data, overwrite)
    return {"name": stored, "subfolder": subfolder, "type": kind}


def _original_ref(ctx: ServerContext, raw: str | None) -> Path:
    try:
        ref = json.loads(raw or "")
    except ValueError:
        ref = None
    if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        raise BadRequest("invalid_upload", "'original_ref' must be JSON "
                         "{\"filename\", \"subfolder\", \"type\"} naming the image to mask.")
    subfolder = ref.get("subfolder") or ""
    kind = ref.get("type") or "input"
    if not isinstance(subfolder, str) or not isinstance(kind, str):
        raise BadRequest("invalid_upload", "'original_ref' fields must be strings.")
    path = resolve_user_file(ctx, kind, subfolder, ref["filename"])
    if not path.is_file():
        raise BadRequest("not_found", "The original image named in 'original_ref' does not exist.",
                         status=404)
    return path


async def _upload(request: web.Request, mask: bool) -> web.Response:
    ctx = _ctx(request)
    fields, data, filename = await _read_upload(request, ctx.config.max_upload_bytes)
    try:
        result = await asyncio.to_thread(_store_image, ctx, fields, data, filename, mask)
    except ImageRejected as exc:
        raise BadRequest("invalid_image", f"Upload refused: {exc}") from None
    return json_response(result)


async def upload_image(request: web.Request) -> web.Response:
    return await _upload(request, mask=False)


async def upload_mask(request: web.Request) -> web.Response:
    return await _upload(request, mask=True)


ROUTES = [("GET", "/view", view), ("POST", "/upload/image", upload_image),
          ("POST", "/upload/mask", upload_mask)]
