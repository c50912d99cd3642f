"""``cvcycle up``: the web UI and REST API, and the inference server on the home's model repository.

The API and UI run in this process (uvicorn); the inference server runs as ``python -m
cvcycle.serve`` in a child process, as it would on a serving box, and stops with this command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from cvcycle.cli.common import console, err_console, handle_errors
from cvcycle.home import init_home
from cvcycle.settings import get_settings


def _start_inference_server(repo: Path, host: str, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    repo.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cvcycle.serve", "--repo", str(repo), "--host", host]
    return subprocess.Popen([*command, "--http-port", str(port), *extra])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@handle_errors
def up(
    port: int = typer.Option(8080, "--port", help="Port of the web UI and the REST API."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every one."),
    serve_port: int = typer.Option(
        8000, "--serve-port", help="HTTP port of the inference server; 0 to not start it."
    ),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="Model repository to serve (default: CVCYCLE_MODEL_REPOSITORY, <home>/model-repository).",
    ),
    serve_args: list[str] = typer.Option(
        [],
        "--serve-arg",
        help="A further flag for the inference server, e.g. --serve-arg=--grpc-port=-1.",
    ),
    mlflow_url: str | None = typer.Option(
        None, "--mlflow-url", help="Where the MLflow UI runs, so that run pages link to it."
    ),
) -> None:
    """Start the web UI, the REST API (OpenAPI at /openapi.json) and the inference server."""
    import uvicorn

    from cvcycle.api import create_app

    settings = get_settings()
    if mlflow_url:
        settings = settings.model_copy(update={"mlflow_ui_url": mlflow_url})
    init_home(settings)
    server = None
    if serve_port:
        repository = repo or settings.model_repository_dir
        server = _start_inference_server(repository, host, serve_port, serve_args)
    try:
        url = f"http://{host}:{port}"
        console.print(
            f"cvcycle is up: [bold]{url}[/]  (OpenAPI {url}/openapi.json)",
            highlight=False,
            soft_wrap=True,
        )
        if server is not None:
            served = f"inference server: http://{host}:{serve_port} serving {repository}"
            console.print(served, highlight=False, soft_wrap=True)
        console.print(f"home: {settings.home}   stop with Ctrl+C", highlight=False)
        uvicorn.run(
            create_app(settings), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
        )
    finally:
        if server is not None:
            _stop(server)
            if server.returncode not in (0, -15, None):
                err_console.print(f"the inference server exited with code {server.returncode}")


def register(app: typer.Typer) -> None:
    app.command()(up)
