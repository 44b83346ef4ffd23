"""Request guards: Host allow-list, access token, Origin/Fetch-Metadata checks, CORS, error bodies.

Threats these address (see shared/reference/users-and-security.md §2.4–2.5):
- any web page can POST to 127.0.0.1 (CSRF): state-changing requests and websocket handshakes
  from a foreign Origin (including `Origin: null`) or with `Sec-Fetch-Site: cross-site` are
  refused unless that origin was allowed with `--enable-cors-header`;
- DNS rebinding makes Host and Origin agree on an attacker's name: a Host that is a *name* must
  be on the allow-list (IP literals cannot be rebound);
- exposing the server with `--listen`: every request then needs the access token, as
  `Authorization: Bearer …` or the cookie set when the browser opens the printed URL.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from server.jsonsafe import json_response
from server.requests import BadRequest

log = logging.getLogger(__name__)

TOKEN_COOKIE = "latentgraph_token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

TOKEN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Latentgraph: access token needed</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto">
<h1>Access token needed</h1>
<p>This Latentgraph server is reachable from the network, so it asks for its access token.
Open the address the server printed when it started (it ends in <code>?token=…</code>),
or start the server with <code>--auth-token</code> to choose the token yourself.</p>
</body></html>
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SecurityPolicy:
    """What the guards enforce; built once from the command line."""

    token: str | None = None
    allowed_host_names: frozenset[str] = LOOPBACK_NAMES
    cors_origins: frozenset[str] = frozenset()  # "*" allows every origin (explicit opt-in)

    @staticmethod
    def generate_token() -> str:
        return secrets.token_urlsafe(24)

    def cors_allows(self, origin: str) -> bool:
        return "*" in self.cors_origins or origin in self.cors_origins


def error_body(status: int, error_type: str, message: str, **extra: Any) -> web.Response:
    """The one shape every refused request gets: {"error": {"type", "message", ...}}."""
    payload = {"error": {"type": error_type, "message": message, **extra}}
    return json_response(payload, status=status)


def split_host(host_header: str) -> str | None:
    """The host part of a Host header (no port, no IPv6 brackets), lower-cased; None if malformed."""
    try:
        parsed = urlsplit("//" + host_header)
        host = parsed.hostname
        _ = parsed.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(host_header: str | None, policy: SecurityPolicy) -> bool:
    if not host_header:
        return False
    host = split_host(host_header)
    if host is None:
        return False
    return is_ip_literal(host) or host in policy.allowed_host_names


def same_origin(origin: str, request: web.Request) -> bool:
    """True when the Origin header names this server as the browser reached it."""
    try:
        parsed = urlsplit(origin)
        origin_port = parsed.port
    except ValueError:
        return False
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return False
    # behind a TLS-terminating proxy the browser's scheme arrives as X-Forwarded-Proto
    schemes = {request.scheme, request.headers.get("X-Forwarded-Proto", "").lower()}
    if parsed.scheme not in schemes:
        return False
    host = split_host(request.host or "")
    if host is None or parsed.hostname.lower().rstrip(".") != host:
        return False
    try:
        request_port = urlsplit("//" + (request.host or "")).port
    except ValueError:
        return False
    default_port = 443 if parsed.scheme == "https" else 80
    return (origin_port or default_port) == (request_port or default_port)


def token_from_request(request: web.Request) -> str | None:
    """The header or the cookie; `?token=` only on a plain GET, the printed start-up URL (a token
    in the query of a POST or a websocket would end up in logs and histories, and is not needed)."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie:
        return cookie
    if request.method == "GET" and not _is_websocket(request):
        return request.query.get("token")
    return None


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def security_middleware(policy: SecurityPolicy) -> Any:
    """Host, token, Origin and CORS checks, in that order, before any handler runs."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), policy):
            return error_body(403, "host_not_allowed",
                              "This Host name is not allowed (DNS rebinding protection). Open the "
                              "server by IP address or localhost, or add the name with --allow-host.")
        origin = request.headers.get("Origin")
        cors_ok = origin is not None and policy.cors_allows(origin)

        if request.method == "OPTIONS" and cors_ok:
            return _cors(web.Response(status=204), origin, preflight=True)

        if policy.token is not None:
            given = token_from_request(request)
            if not token_matches(given, policy.token):
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    return web.Response(status=401, text=TOKEN_PAGE, content_type="text/html")
                return error_body(401, "unauthorized",
                                  "An access token is required: send 'Authorization: Bearer "
                                  "<token>' or open the URL the server printed at start.")

        is_websocket = _is_websocket(request)
        if request.method in STATE_CHANGING or is_websocket:
            refusal = _foreign_origin_refusal(request, origin, cors_ok)
            if refusal is not None:
                return refusal

        if (policy.token is not None and request.method == "GET" and not is_websocket
                and token_matches(request.query.get("token"), policy.token)):
            # the printed URL: keep the token in a cookie and out of the address bar and history
            query = request.rel_url.query.copy()
            query.popall("token")
            redirect = web.Response(status=302,
                                    headers={"Location": str(request.rel_url.with_query(query))})
            redirect.set_cookie(TOKEN_COOKIE, policy.token, httponly=True, samesite="Strict",
                                path="/", max_age=30 * 24 * 3600)
            return redirect

        response = await handler(request)
        if cors_ok and origin is not None and not response.prepared:
            _cors(response, origin, preflight=False)
        return response

    return guard


def _foreign_origin_refusal(request: web.Request, origin: str | None,
                            cors_ok: bool) -> web.Response | None:
    if origin is not None and not cors_ok and not same_origin(origin, request):
        return error_body(403, "foreign_origin",
                          f"Requests from origin {origin!r} are refused (cross-site request "
                          "protection). Start the server with --enable-cors-header ORIGIN to "
                          "allow a trusted site.")
    if origin is None and request.headers.get("Sec-Fetch-Site") == "cross-site":
        return error_body(403, "foreign_origin", "Cross-site requests are refused.")
    return None


def _cors(response: web.StreamResponse, origin: str, preflight: bool) -> web.StreamResponse:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    response.headers["Access-Control-Allow-Credentials"] = "true"
    if preflight:
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization, Comfy-User"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as structured JSON; tracebacks go to the log, never to the client."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_body(exc.status, _http_error_type(exc.status), exc.reason or "Request refused")
    except HttpProcessingError as exc:  # malformed multipart headers and the like
        return error_body(400, "bad_request", f"Malformed request: {exc.message or exc}")
    except json.JSONDecodeError as exc:  # a handler forgot to validate; still the client's fault
        return error_body(400, "invalid_json", f"Request body is not valid JSON: {exc.msg}")
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_body(500, "internal_error",
                          "The server hit an unexpected error; details are in its log.")


def _http_error_type(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
            415: "unsupported_media_type"}.get(status, "http_error")


def security_headers_middleware() -> Any:
    """Baseline headers on every response: no MIME sniffing, no framing by other sites."""

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return headers
