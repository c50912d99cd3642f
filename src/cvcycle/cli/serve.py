"""``cvcycle serve``: the KServe v2 / Triton HTTP server over a model repository, on ONNX Runtime."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cvcycle.cli.common import handle_errors


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def serve(
        repo: Path = typer.Option(..., "--repo", help="The model repository (Triton layout) to serve."),
        http_port: int = typer.Option(8000, "--http-port", help="HTTP port (KServe v2 protocol)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every one."),
        poll: float = typer.Option(
            2.0, "--poll", min=0, help="Seconds between repository polls for new versions (0: never)."
        ),
    ) -> None:
        """Serve the repository's ONNX models until interrupted; newly published versions are picked up."""
        from cvcycle.serve import run_server  # deferred: other commands need not import the server

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        run_server(repo, host, http_port, poll)
