"""Browser safety of the API and UI: the Host allow-list, CSRF, body size caps, security headers.

One ASGI middleware (:class:`BrowserSafety`, installed once by ``create_app``) sees every request
before any route does:

* **Host allow-list** against DNS rebinding: a ``Host`` not in ``CVCYCLE_ALLOWED_HOSTS`` gets 400.
* **CSRF**: a mutating request (POST, PUT, PATCH, DELETE) with a body or a content type must send
  ``application/json`` (the events upload also takes a multipart form and JSON Lines types), and an
  ``Origin`` header, when sent, must be this server's own origin or a proxy's name from the
  allow-list (loopback names count only as the server's own origin). What a page on another origin
  can send without a CORS preflight (``text/plain``, forms) is refused with 403.
* **Body caps**: ``CVCYCLE_MAX_BODY_BYTES`` (``CVCYCLE_MAX_UPLOAD_BYTES`` for the events upload),
  from ``Content-Length`` before reading and while a chunked body streams in: 413.
* **Security headers** on every response: ``nosniff``, ``Referrer-Policy``, no framing.

Refusals are the API's ``{"error", "hint"}`` bodies. Settings are read per request, so a change to
the app's settings object applies at once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cvcycle.errors import TooLarge
from cvcycle.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})
UPLOAD_PATH = "/api/events"
# The body types of the events upload besides JSON: a form, and JSON Lines under its usual names.
# (No text/plain: a page on another origin can send that without asking first.)
UPLOAD_TYPES = frozenset(
    {"multipart/form-data", "application/x-ndjson", "application/jsonl", "application/x-jsonlines"}
    | {"application/json", "application/octet-stream"}
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
FRAME_CSP = (b"content-security-policy", b"frame-ancestors 'none'")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _split_host(text: str) -> tuple[str, int | None] | None:
    """``host[:port]`` as (lower-case name, port or None); IPv6 stays in brackets. None: malformed."""
    text = text.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text.partition("]")
        if not bracket:
            return None
        name += "]"
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    else:
        name, colon, port_text = text.partition(":")
        if colon and not port_text:
            return None
    if port_text is None or not name:
        return None
    if not port_text:
        return name, None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return None
    return name, int(port_text)


def allowed_host_patterns(setting: str) -> list[tuple[str, int | None]]:
    """``CVCYCLE_ALLOWED_HOSTS`` as (name, port or None for any) pairs; ``*`` is the name "*"."""
    patterns: list[tuple[str, int | None]] = []
    for entry in setting.split(","):
        entry = entry.strip()
        if entry == "*":
            patterns.append(("*", None))
        elif entry and (split := _split_host(entry)) is not None:
            patterns.append(split)
    return patterns


def _matches(host: tuple[str, int | None], patterns: list[tuple[str, int | None]]) -> bool:
    name, port = host
    return any(p == "*" or (p == name and (p_port is None or p_port == port)) for p, p_port in patterns)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _origin_ok(origin: str, host: tuple[str, int | None], scheme: str, settings: Settings) -> bool:
    """Whether ``origin`` (scheme://host[:port]) is this server's own origin or an allowed proxy name."""
    o_scheme, sep, rest = origin.strip().lower().partition("://")
    split = _split_host(rest) if sep and "/" not in rest else None
    if split is None:
        return False  # "null", or not an origin
    o_name, o_port = split
    o_port = o_port if o_port is not None else _DEFAULT_PORTS.get(o_scheme)
    name, port = host
    port = port if port is not None else _DEFAULT_PORTS.get(scheme)
    if (o_name, o_port) == (name, port):
        return True
    proxies = [p for p in allowed_host_patterns(settings.allowed_hosts) if p[0] not in LOOPBACK]
    return _matches((o_name, o_port), proxies)


def _content_type_ok(scope: Scope, has_body: bool) -> bool:
    content_type = _header(scope, b"content-type")
    if content_type is None:
        # No type: a bodiless call (a DELETE, a POST that carries nothing), or a JSON Lines upload
        # from a script. A browser on another origin that sends one also sends Origin (checked).
        return not has_body or scope["path"] == UPLOAD_PATH
    media_type = content_type.partition(";")[0].strip().lower()
    if scope["path"] == UPLOAD_PATH and scope["method"] == "POST":
        return media_type in UPLOAD_TYPES
    return media_type == "application/json"


async def _refuse(send: Send, status: int, error: str, hint: str | None) -> None:
    body = json.dumps({"error": error, "hint": hint}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


class BrowserSafety:
    """The ASGI middleware described in the module docstring, over ``app`` with ``settings``."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        host_header = _header(scope, b"host") or ""
        host = _split_host(host_header)
        if host is None or not _matches(host, allowed_host_patterns(settings.allowed_hosts)):
            await _refuse(
                send,
                400,
                f"host {host_header[:200]!r} is not allowed",
                "add the name this server is reached by to CVCYCLE_ALLOWED_HOSTS",
            )
            return

        upload = scope["path"] == UPLOAD_PATH and scope["method"] == "POST"
        limit, setting = (
            (settings.max_upload_bytes, "CVCYCLE_MAX_UPLOAD_BYTES")
            if upload
            else (settings.max_body_bytes, "CVCYCLE_MAX_BODY_BYTES")
        )
        what = "upload" if upload else "request body"
        hint = f"split the file, or raise {setting}" if upload else f"send less, or raise {setting}"
        declared = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding") is not None
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _refuse(
                send, 413, f"{what} of {int(declared)} bytes is over the limit of {limit} bytes", hint
            )
            return

        if scope["method"] in MUTATING:
            has_body = chunked or (declared is not None and declared.strip() not in ("", "0"))
            if not _content_type_ok(scope, has_body):
                kinds = "application/json" + (", application/x-ndjson or a multipart form" if upload else "")
                await _refuse(
                    send,
                    403,
                    f"content-type: this request must be sent as {kinds}",
                    "a call that changes data must say what it sends; set the Content-Type header",
                )
                return
            origin = _header(scope, b"origin")
            if origin is not None and not _origin_ok(origin, host, scope.get("scheme", "http"), settings):
                await _refuse(
                    send,
                    403,
                    f"origin {origin[:200]!r} may not change data here",
                    "call from this server's own pages, or add a proxy's name to CVCYCLE_ALLOWED_HOSTS",
                )
                return

        received = 0
        over = False  # the body passed its cap while the app read it
        started = False

        async def capped_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise TooLarge(f"{what} is over the limit of {limit} bytes", hint=hint)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # whatever the app made of the error, the answer is 413 (below)
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {key.lower() for key, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if FRAME_CSP[0] not in names:
                    headers.append(FRAME_CSP)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            # FastAPI turns a failure to read a JSON body into 400: the cap's answer is 413.
            await _refuse(send, 413, f"{what} is over the limit of {limit} bytes", hint)
