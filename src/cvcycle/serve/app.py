"""The HTTP front end: KServe v2 / Triton routes over the model repository (Starlette).

Health, server and model metadata, model readiness, the model configuration (Triton's
``model_configuration`` extension), inference with JSON or binary tensors, the repository index,
load and unload (``model_repository``) and model statistics (``statistics``), so that the official
``tritonclient.http`` works against it unchanged. Errors are ``{"error": "..."}`` with the cause.
Each route names its API category; a category restricted by ``--http-restricted-api`` answers 403
without its header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cvcycle import __version__
from cvcycle.errors import CvcycleError
from cvcycle.serve.inference import find_model, find_version, infer, model_metadata
from cvcycle.serve.model_config import ServedConfig, parse_model_config_json
from cvcycle.serve.protocol import (
    HEADER_LENGTH,
    MAX_INPUT_BYTES,
    ProtocolError,
    decode_body,
    encode_infer_response,
    encode_response_body,
    parse_infer_request,
    too_large,
)
from cvcycle.serve.repository import ModelRepository
from cvcycle.serve.restricted import Restriction

log = logging.getLogger("cvcycle.serve")

EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
SERVER_NAME = "cvcycle"


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def load_config_parameter(parameters: dict[str, Any]) -> ServedConfig | None:
    """The ``config`` parameter of a load request as a config; file overrides are refused by name."""
    files = [key for key in parameters if key.startswith("file:")]
    if files:
        raise ProtocolError(
            f"load parameters {', '.join(files)}: file overrides are not supported by cvcycle serve; "
            "write the files into the repository and load again"
        )
    config = parameters.get("config")
    if config is None or config == "":
        return None
    if not isinstance(config, str):
        raise ProtocolError("the load parameter 'config' must be a JSON string of a ModelConfig")
    served = parse_model_config_json(config)
    named = [("default_model_filename", served.default_model_filename)]
    named += [(f"cc_model_filenames[{cc!r}]", name) for cc, name in served.cc_model_filenames.items()]
    for field, name in named:  # refused before any file is looked at: no probe of what exists
        if not is_plain_file_name(name):
            raise ProtocolError(
                f"the load parameter 'config': {field} must be a plain file name inside the version "
                "folder (no '/', '\\', '..' or absolute path)"
            )
    return served


def is_plain_file_name(name: str) -> bool:
    """True for a file name with no directory part: it can only name a file in the folder it is read in."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0:")


def statistics_of(repository: ModelRepository, model: str | None, version: str | None) -> dict[str, Any]:
    """Triton's ``$stats_model_response``: every ready version of one model, or of every model."""
    if not model:
        entries = list(repository.models.values())
        return {"model_stats": [v.statistics.to_json() for e in entries for _, v in sorted(e.ready.items())]}
    entry = find_model(repository, model)
    if version:
        return {"model_stats": [find_version(entry, version).statistics.to_json()]}
    return {"model_stats": [loaded.statistics.to_json() for _, loaded in sorted(entry.ready.items())]}


async def read_body(request: Request) -> bytes:
    """The request body, decompressed; refused past the app's ``max_input_size`` before it is read whole.

    A ``Content-Length`` over the limit is refused before any of the body is read; a chunked body
    is read until it passes the limit; a compressed one is inflated no further than the limit.
    """
    limit: int = request.app.state.max_input_size
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(f"of {declared} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"of at least {size} bytes", limit)
        chunks.append(chunk)
    return decode_body(b"".join(chunks), request.headers.get("content-encoding"), limit)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await read_body(request)
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ProtocolError("the request body must be a JSON object")
    return parsed


async def run_inference(request: Request, model: str, version: str | None) -> Response:
    """POST .../infer: the request's tensors through the model, the response as the client asked."""
    body = await read_body(request)
    parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
    loaded, outputs = await infer(request.app.state.repository, model, version, parsed)
    payload, headers = encode_infer_response(
        loaded.model, str(loaded.version), parsed.id, outputs, parsed.wants_binary
    )
    payload, encoding = encode_response_body(payload, request.headers.get("accept-encoding"))
    return Response(payload, headers={**headers, **encoding})


def _infer_route(path: str) -> tuple[str, str | None] | None:
    """(model, version) of an inference path, /v2/models/M/infer or /v2/models/M/versions/V/infer."""
    if not path.startswith("/v2/models/") or not path.endswith("/infer"):
        return None
    parts = path[len("/v2/models/") : -len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler, restriction: Restriction | None) -> Handler:
    """``handler`` behind its category's key; ``handler`` itself where the category is open."""
    if restriction is None:
        return handler

    async def check_then_answer(request: Request) -> Response:
        restriction.check(request.headers.get(restriction.header))
        return await handler(request)

    return check_then_answer


class InferenceApp(Starlette):
    """Starlette, with inference requests answered without the router and middleware around it.

    Inference is the route under load, and on a small model the layers around a handler cost as
    much as the handler; the answers and errors are those of the routes (the same handler, the same
    error bodies, the same ``inference`` restriction).
    """

    inference_restriction: Restriction | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            target = _infer_route(scope["path"])
            if target is not None:
                scope["app"] = self
                request = Request(scope, receive)
                restriction = self.inference_restriction
                try:
                    if restriction is not None:
                        restriction.check(request.headers.get(restriction.header))
                    response = await run_inference(request, *target)
                except CvcycleError as exc:
                    response = JSONResponse({"error": exc.message}, status_code=exc.http_status)
                except Exception as exc:  # answered as the routes answer it
                    log.exception("%s %s failed", scope["method"], scope["path"])
                    response = JSONResponse(
                        {"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500
                    )
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_http_app(
    repository: ModelRepository,
    max_input_size: int = MAX_INPUT_BYTES,
    *,
    restricted: Mapping[str, Restriction] | None = None,
) -> Starlette:
    """The routes over a repository that its owner loads, polls and closes.

    ``max_input_size``: the largest request body in bytes, before and after decompression
    (Triton's ``--http-max-input-size``); a larger one gets 400. ``restricted``: API category ->
    the header its requests need (``--http-restricted-api``); every route names its category below.
    """
    restricted = restricted or {}

    def route(path: str, handler: Handler, category: str, methods: list[str] | None = None) -> Route:
        return Route(path, guarded(handler, restricted.get(category)), methods=methods)

    def repo(request: Request) -> ModelRepository:
        return request.app.state.repository

    async def live(request: Request) -> Response:
        return Response(status_code=200)

    async def ready(request: Request) -> Response:
        waiting = repo(request).not_ready()
        if waiting:  # Triton answers 400 while the server is not ready
            raise ProtocolError(f"the server is not ready: {waiting}")
        return Response(status_code=200)

    async def metadata_of_server(request: Request) -> Response:
        return JSONResponse(server_metadata())

    async def model_ready(request: Request) -> Response:
        entry = find_model(repo(request), request.path_params["model"])
        find_version(entry, request.path_params.get("version"))
        return Response(status_code=200)

    async def metadata(request: Request) -> Response:
        entry = find_model(repo(request), request.path_params["model"])
        version = request.path_params.get("version")
        loaded = find_version(entry, version)
        return JSONResponse(model_metadata(entry, loaded, version is not None))

    async def config(request: Request) -> Response:
        entry = find_model(repo(request), request.path_params["model"])
        find_version(entry, request.path_params.get("version"))
        if entry.config is None:
            raise ProtocolError(f"model {entry.name!r} has no readable config.pbtxt: {entry.error}", 503)
        return JSONResponse(entry.config.as_json)

    async def run(request: Request) -> Response:
        return await run_inference(request, request.path_params["model"], request.path_params.get("version"))

    async def index(request: Request) -> Response:
        body = await _json_body(request)
        rows = repo(request).index(ready_only=bool(body.get("ready", False)))
        return JSONResponse([row.to_json() for row in rows])

    async def load(request: Request) -> Response:
        body = await _json_body(request)
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProtocolError("the load request's 'parameters' must be a JSON object")
        override = load_config_parameter(parameters)
        await run_in_threadpool(repo(request).load, request.path_params["model"], override)
        return Response(status_code=200)

    async def unload(request: Request) -> Response:
        await _json_body(request)  # unload_dependents: no ensembles here, nothing depends on a model
        await run_in_threadpool(repo(request).unload, request.path_params["model"])
        return Response(status_code=200)

    async def stats(request: Request) -> Response:
        return JSONResponse(
            statistics_of(repo(request), request.path_params.get("model"), request.path_params.get("version"))
        )

    async def cvcycle_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CvcycleError)
        return JSONResponse({"error": exc.message}, status_code=exc.http_status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            message += " (the KServe v2 routes are under /v2)"
        return JSONResponse({"error": message}, status_code=exc.status_code)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    model = "/v2/models/{model}"
    version = "/v2/models/{model}/versions/{version}"
    routes = [
        # Inference first: the router tries the routes in order, and this is the one under load.
        route(f"{model}/infer", run, "inference", ["POST"]),
        route(f"{version}/infer", run, "inference", ["POST"]),
        route("/v2/health/live", live, "health"),
        route("/v2/health/ready", ready, "health"),
        route("/v2", metadata_of_server, "metadata"),
        route("/v2/models/stats", stats, "statistics"),
        route(f"{model}/ready", model_ready, "health"),
        route(f"{version}/ready", model_ready, "health"),
        route(model, metadata, "metadata"),
        route(version, metadata, "metadata"),
        route(f"{model}/config", config, "model-config"),
        route(f"{version}/config", config, "model-config"),
        route(f"{model}/stats", stats, "statistics"),
        route(f"{version}/stats", stats, "statistics"),
        route("/v2/repository/index", index, "model-repository", ["POST"]),
        route("/v2/repository/models/{model}/load", load, "model-repository", ["POST"]),
        route("/v2/repository/models/{model}/unload", unload, "model-repository", ["POST"]),
    ]
    app = InferenceApp(
        routes=routes,
        exception_handlers={
            CvcycleError: cvcycle_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
    )
    app.state.repository = repository
    app.state.max_input_size = max_input_size
    app.inference_restriction = restricted.get("inference")
    return app


def create_app(repo_dir: Path | str, poll_interval: float = 2.0, *, session_threads: int = 0) -> Starlette:
    """The HTTP app alone over ``repo_dir`` in poll mode, loaded now, polling while it runs (0: never)."""
    repository = ModelRepository(Path(repo_dir), session_threads=session_threads)
    repository.start()
    app = create_http_app(repository)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        repository.start_polling(poll_interval)
        try:
            yield
        finally:
            repository.close()

    app.router.lifespan_context = lifespan
    return app
