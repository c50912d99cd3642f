"""``cvcycle serve``: the KServe v2 / Triton server (HTTP, gRPC, metrics) over a model repository."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cvcycle.cli.common import handle_errors
from cvcycle.serve.options import HELP, port_or_off


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def serve(
        repo: Path = typer.Option(..., "--repo", help=HELP["repo"]),
        http_port: int = typer.Option(8000, "--http-port", help=HELP["http_port"]),
        grpc_port: int = typer.Option(8001, "--grpc-port", help=HELP["grpc_port"]),
        metrics_port: int = typer.Option(8002, "--metrics-port", help=HELP["metrics_port"]),
        host: str = typer.Option("127.0.0.1", "--host", help=HELP["host"]),
        control_mode: str = typer.Option("poll", "--model-control-mode", help=HELP["control_mode"]),
        load_model: list[str] = typer.Option([], "--load-model", help=HELP["load_model"]),
        poll_interval: float = typer.Option(
            2.0, "--poll-interval", "--repository-poll-secs", "--poll", min=0, help=HELP["poll_interval"]
        ),
        session_threads: int = typer.Option(0, "--session-threads", min=0, help=HELP["session_threads"]),
    ) -> None:
        """Serve the repository's models until interrupted (poll mode picks up new versions)."""
        from cvcycle.serve import ServerOptions, run_server  # deferred: other commands need not load it

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
            )
        )
