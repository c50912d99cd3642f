"""The server's command line, declared once: ``cvcycle serve`` and ``python -m cvcycle.serve`` run ``serve``.

The flags are named as Triton names them, so that a deployment can switch servers without relearning
flags; their defaults are those of ``ServerOptions``. ``serve`` raises ``CvcycleError``: each entry
point renders it as one line and exit code 2.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cvcycle.serve.repository import CONTROL_MODES
from cvcycle.serve.restricted import CATEGORIES, parse_restricted
from cvcycle.serve.server import ServerOptions, run_server

_DEFAULTS = ServerOptions(repo=Path())


def port_or_off(port: int) -> int | None:
    return None if port < 0 else port


def serve(
    repo: Path = typer.Option(..., "--repo", help="The model repository (Triton layout) to serve."),
    http_port: int = typer.Option(
        _DEFAULTS.http_port,
        "--http-port",
        help="HTTP port (KServe v2 / Triton protocol); -1 to turn HTTP off.",
    ),
    grpc_port: int = typer.Option(
        _DEFAULTS.grpc_port,
        "--grpc-port",
        help="gRPC port (Triton's GRPCInferenceService); -1 to turn gRPC off.",
    ),
    metrics_port: int = typer.Option(
        _DEFAULTS.metrics_port,
        "--metrics-port",
        help="Prometheus metrics port (/metrics); -1 to turn metrics off.",
    ),
    host: str = typer.Option(_DEFAULTS.host, "--host", help="Address to listen on; 0.0.0.0 for every one."),
    control_mode: str = typer.Option(
        _DEFAULTS.control_mode,
        "--model-control-mode",
        help=f"Model control mode: {' or '.join(CONTROL_MODES)} (as Triton's --model-control-mode).",
    ),
    load_model: list[str] = typer.Option(
        [], "--load-model", help="In explicit mode, a model to load at start (repeatable; '*' for all)."
    ),
    poll_interval: float = typer.Option(
        _DEFAULTS.poll_interval,
        "--poll-interval",
        "--repository-poll-secs",
        "--poll",
        min=0,
        help="Seconds between repository polls in poll mode (0: load once, never poll).",
    ),
    session_threads: int = typer.Option(
        _DEFAULTS.session_threads,
        "--session-threads",
        min=0,
        help=(
            "ONNX Runtime intra-op threads per model instance, where config.pbtxt sets no "
            "intra_op_thread_count (0: the CPUs divided among the model's instances)."
        ),
    ),
    http_max_input_size: int = typer.Option(
        _DEFAULTS.http_max_input_size,
        "--http-max-input-size",
        min=1,
        help=(
            "The largest HTTP request body in bytes, before and after decompression (as Triton's); "
            "a larger one gets 400."
        ),
    ),
    grpc_max_message_size: int = typer.Option(
        _DEFAULTS.grpc_max_message_size,
        "--grpc-max-message-size",
        min=1,
        max=2**31 - 1,
        help="The largest gRPC message in bytes, received or sent; a larger one gets RESOURCE_EXHAUSTED.",
    ),
    http_restricted_api: list[str] = typer.Option(
        [],
        "--http-restricted-api",
        help=(
            "<category>[,<category>...]:<header>=<value> (repeatable, as Triton's): HTTP requests to "
            f"those APIs need the header, else 403. Categories: {', '.join(CATEGORIES)}."
        ),
    ),
    grpc_restricted_protocol: list[str] = typer.Option(
        [],
        "--grpc-restricted-protocol",
        help=(
            "<category>[,<category>...]:<header>=<value> (repeatable, as Triton's): gRPC calls to those "
            "APIs need the metadata key, else PERMISSION_DENIED."
        ),
    ),
) -> None:
    """Serve the repository's models until interrupted (poll mode picks up new versions)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_server(
        ServerOptions(
            repo=repo,
            host=host,
            http_port=port_or_off(http_port),
            grpc_port=port_or_off(grpc_port),
            metrics_port=port_or_off(metrics_port),
            control_mode=control_mode,
            load_models=load_model,
            poll_interval=poll_interval,
            session_threads=session_threads,
            http_max_input_size=http_max_input_size,
            grpc_max_message_size=grpc_max_message_size,
            http_restricted=parse_restricted(http_restricted_api, "--http-restricted-api"),
            grpc_restricted=parse_restricted(grpc_restricted_protocol, "--grpc-restricted-protocol"),
        )
    )
