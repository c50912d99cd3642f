"""``cvcycle serve`` as a whole: the repository, HTTP, gRPC and Prometheus metrics on their ports.

``InferenceServer`` starts them all in background threads (``start``/``stop``, for tests and
embedding); ``run_server`` runs them until SIGINT or SIGTERM. The flags mirror Triton's:
``--model-control-mode poll|explicit``, ``--load-model``, ``--repository-poll-secs``,
``--http-max-input-size``, ``--http-restricted-api``, ``--grpc-restricted-protocol``;
``--grpc-max-message-size`` bounds gRPC messages the same way.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from cvcycle.errors import InvalidInput
from cvcycle.serve.app import create_http_app
from cvcycle.serve.protocol import MAX_INPUT_BYTES
from cvcycle.serve.repository import ModelRepository
from cvcycle.serve.restricted import Restriction
from cvcycle.serve.statistics import StatisticsBook, TritonMetrics

log = logging.getLogger("cvcycle.serve")

#: uvloop and httptools (dependencies; uvloop is not built for Windows) take about 40% less CPU
#: per HTTP request than asyncio's loop and h11.
HTTP_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
HTTP_PARSER = "httptools"


@dataclass
class ServerOptions:
    """Where and how to serve; a port of None leaves that front end off."""

    repo: Path
    host: str = "127.0.0.1"
    http_port: int | None = 8000
    grpc_port: int | None = 8001
    metrics_port: int | None = 8002
    control_mode: str = "poll"
    load_models: list[str] = field(default_factory=list)
    poll_interval: float = 2.0
    session_threads: int = 0  # ONNX Runtime intra-op threads per instance (0: CPUs / instances)
    http_max_input_size: int = MAX_INPUT_BYTES  # the largest HTTP body, before and after decompression
    grpc_max_message_size: int = MAX_INPUT_BYTES  # the largest gRPC message, received or sent
    # API category -> the header a request needs (--http-restricted-api, --grpc-restricted-protocol)
    http_restricted: dict[str, Restriction] = field(default_factory=dict)
    grpc_restricted: dict[str, Restriction] = field(default_factory=dict)


class InferenceServer:
    """Every front end of one repository, each in its own thread."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.statistics = StatisticsBook()
        self.repository = ModelRepository(
            Path(options.repo),
            control_mode=options.control_mode,
            session_threads=options.session_threads,
            statistics=self.statistics,
        )
        if options.load_models and options.control_mode != "explicit":
            raise InvalidInput(
                "--load-model needs --model-control-mode explicit (in poll mode every model is loaded)"
            )
        self.app = create_http_app(
            self.repository, options.http_max_input_size, restricted=options.http_restricted
        )
        self.metrics_registry = CollectorRegistry()
        self.metrics_registry.register(TritonMetrics(self.statistics))
        self._uvicorn: Any = None
        self._http_thread: threading.Thread | None = None
        self._grpc: Any = None
        self._metrics: Any = None

    def start(self) -> InferenceServer:
        """Load the repository, then open the ports; returns once every front end answers."""
        options = self.options
        self.repository.start(options.load_models)
        self.repository.start_polling(options.poll_interval)
        if options.metrics_port is not None:
            try:
                self._metrics, _ = start_http_server(
                    options.metrics_port, options.host, registry=self.metrics_registry
                )
            except OSError as exc:
                raise InvalidInput(
                    f"cannot serve metrics on {options.host}:{options.metrics_port}: {exc}"
                ) from exc
        if options.grpc_port is not None:
            from cvcycle.serve.grpc_service import GrpcServer  # deferred: needs tritonclient[grpc]

            self._grpc = GrpcServer(
                self.repository,
                options.host,
                options.grpc_port,
                options.grpc_max_message_size,
                restricted=options.grpc_restricted,
            )
            self._grpc.start()
        if options.http_port is not None:
            self._start_http(options.host, options.http_port)
        log.info(
            "serving %s (%s mode): HTTP %s, gRPC %s, metrics %s",
            options.repo,
            options.control_mode,
            options.http_port,
            options.grpc_port,
            options.metrics_port,
        )
        return self

    def _start_http(self, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            loop=HTTP_LOOP,
            http=HTTP_PARSER,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._uvicorn = uvicorn.Server(config)
        self._http_thread = threading.Thread(target=self._uvicorn.run, name="http", daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._http_thread.is_alive() or time.monotonic() > deadline:
                raise InvalidInput(f"cannot serve HTTP on {host}:{port} (is the port taken?)")
            time.sleep(0.01)

    def stop(self) -> None:
        """Close the ports, then retire every model (requests in flight finish)."""
        if self._uvicorn is not None and self._http_thread is not None:
            self._uvicorn.should_exit = True
            self._http_thread.join(timeout=30)
        if self._grpc is not None:
            self._grpc.stop()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        self.repository.close()

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_server(options: ServerOptions) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    server = InferenceServer(options)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
