"""The FastAPI application: services on ``app.state``, errors as ``{"error", "hint"}``, the web UI.

Every request passes :class:`~cvcycle.api.safety.BrowserSafety` first (Host allow-list, CSRF,
body caps, security headers). Errors from the one hierarchy in :mod:`cvcycle.errors` keep their
HTTP status; request validation errors become 422 with the failing field named in ``error``.
Both bodies are records declared for every route (``Problem``, ``InvalidRequest``), so
``/openapi.json`` shows them as it shows the records each route returns. The browser UI is static
ES modules served from ``cvcycle/web/static``; every path that is not ``/api/...`` or a static file gets the
shell ``index.html`` so the front end's router can take it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

import cvcycle
from cvcycle.api.safety import BrowserSafety
from cvcycle.db import Database, open_database
from cvcycle.errors import CvcycleError
from cvcycle.records import to_jsonable
from cvcycle.settings import Settings, get_settings
from cvcycle.store import BlobStore, open_store

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
# Scripts only from this server, and no inline ones: text that slips into markup still cannot run.
SHELL_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'"
)


@dataclass(frozen=True)
class Problem:
    """What went wrong, and what to do about it where there is something to do."""

    error: str
    hint: str | None


@dataclass(frozen=True)
class InvalidRequest(Problem):
    """A request that does not parse: ``error`` names the failing fields, ``detail`` is pydantic's list."""

    detail: list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": Problem, "description": "A user error: not found, conflict, invalid input, ..."},
    422: {"model": InvalidRequest, "description": "The request does not parse."},
}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


_MAX_DETAIL_DEPTH = 20
_MAX_DETAIL_INT_BITS = 4_000  # str() of a longer int is refused by Python (4,300 digits)


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` (a validation error, its ``input`` and ``ctx`` included) as JSON that always renders.

    The input that failed is echoed back, and it can be anything a client sent: NaN and Infinity
    (not JSON), bytes that are not UTF-8, strings with lone surrogates (not encodable), huge
    integers, deep nesting, or an exception a validator raised. Those become strings.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= _MAX_DETAIL_INT_BITS else "<an integer too large to show>"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if depth >= _MAX_DETAIL_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {_plain(str(k)): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    return _plain(str(value))


def create_app(
    settings: Settings | None = None, *, db: Database | None = None, store: BlobStore | None = None
) -> FastAPI:
    """Build the app over one database and blob store (opened from the settings unless given)."""
    from cvcycle.api.routes import ROUTERS

    settings = settings or get_settings()
    # No Swagger UI: it loads its scripts from a CDN, and the UI fetches nothing from elsewhere.
    app = FastAPI(title="cvcycle", version=cvcycle.__version__, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.db = db or open_database(settings)
    app.state.store = store or open_store(settings)
    # Host allow-list, CSRF, body caps and security headers, for every route (cvcycle.api.safety).
    app.add_middleware(BrowserSafety, settings=settings)

    @app.exception_handler(CvcycleError)
    async def _cvcycle_error(_: Request, exc: CvcycleError) -> JSONResponse:
        return JSONResponse(to_jsonable(Problem(exc.message, exc.hint)), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _plain(list(exc.errors()))
        problems = [f"{_field_path(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
        return JSONResponse(to_jsonable(InvalidRequest("; ".join(problems), None, errors)), status_code=422)

    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/{path:path}", include_in_schema=False)
    async def _shell(path: str) -> Any:
        if path.startswith("api/"):
            return JSONResponse(to_jsonable(Problem(f"no API route /{path}", "see /openapi.json")), 404)
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": SHELL_CSP})

    return app
