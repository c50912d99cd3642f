"""The HTTP server: KServe v2 / Triton routes over the polled model repository (Starlette + uvicorn).

Health, server and model metadata, model readiness, the model configuration (Triton's
``model_configuration`` extension) and inference with JSON or binary tensors, so that the official
``tritonclient.http`` works against it unchanged. Errors are ``{"error": "..."}`` with the cause.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cvcycle import __version__
from cvcycle.serve.inference import find_model, find_version, model_metadata, run_inference
from cvcycle.serve.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    decode_body,
    encode_infer_response,
    encode_response_body,
    parse_infer_request,
)
from cvcycle.serve.repository import ModelRepository

log = logging.getLogger("cvcycle.serve")

EXTENSIONS = ["binary_tensor_data", "model_configuration"]


def create_app(repo_dir: Path | str, poll_interval: float = 2.0, *, session_threads: int = 0) -> Starlette:
    """The app over ``repo_dir``, loaded now; it polls every ``poll_interval`` s while it runs (0: never)."""
    repository = ModelRepository(Path(repo_dir), session_threads=session_threads)
    repository.poll()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        repository.start_polling(poll_interval)
        try:
            yield
        finally:
            repository.stop_polling()

    def repo(request: Request) -> ModelRepository:
        return request.app.state.repository

    async def live(request: Request) -> Response:
        return Response(status_code=200)

    async def ready(request: Request) -> Response:
        if not repo(request).ready:
            raise ProtocolError("the model repository is still loading", 503)
        return Response(status_code=200)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "cvcycle", "version": __version__, "extensions": EXTENSIONS})

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

    async def infer(request: Request) -> Response:
        entry = find_model(repo(request), request.path_params["model"])
        loaded = find_version(entry, request.path_params.get("version"))
        body = decode_body(await request.body(), request.headers.get("content-encoding"))
        parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
        outputs = await run_in_threadpool(run_inference, entry, loaded, parsed)
        payload, headers = encode_infer_response(
            entry.name, str(loaded.version), parsed.id, outputs, parsed.wants_binary
        )
        payload, encoding = encode_response_body(payload, request.headers.get("accept-encoding"))
        return Response(payload, headers={**headers, **encoding})

    async def protocol_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProtocolError)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

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
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2", server_metadata),
        Route(f"{model}/ready", model_ready),
        Route(f"{version}/ready", model_ready),
        Route(model, metadata),
        Route(version, metadata),
        Route(f"{model}/config", config),
        Route(f"{version}/config", config),
        Route(f"{model}/infer", infer, methods=["POST"]),
        Route(f"{version}/infer", infer, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ProtocolError: protocol_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
    )
    app.state.repository = repository
    return app


def run_server(
    repo_dir: Path | str, host: str = "127.0.0.1", http_port: int = 8000, poll_interval: float = 2.0
) -> None:
    """Serve ``repo_dir`` over HTTP until interrupted."""
    import uvicorn

    app = create_app(repo_dir, poll_interval)
    uvicorn.run(app, host=host, port=http_port, log_level="info", access_log=False)
