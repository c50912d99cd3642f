"""``cvcycle up``: the web UI and REST API, and the inference server on the home's model repository.

The API and UI run in this process (uvicorn); the inference server runs as ``python -m
cvcycle.serve`` in a child process, as it would on a serving box. ``up`` checks every port it needs
before starting anything, reports "up" only once the inference server answers, and stops the child
on any exit: SIGINT and SIGTERM are a clean shutdown (the child is terminated, waited for and killed
after a timeout); on Linux the child also gets SIGTERM should this process die unannounced.

Model control (the repository index, load, unload) on that server is restricted, as Triton
restricts it: each start makes a random key, passes it with ``--http-restricted-api`` and
``--grpc-restricted-protocol`` and writes it, readable by its owner only, to
``<home>/inference-server.key``, where ``cvcycle sync`` on the same home finds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

import typer

from cvcycle.cli.common import console, err_console, handle_errors
from cvcycle.errors import Conflict, ServerUnavailable
from cvcycle.home import init_home
from cvcycle.settings import get_settings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 10.0


#: Where ``up`` leaves its inference server's model-control key, in the home.
SERVER_KEY_FILE = "inference-server.key"


def server_key_file(home: Path) -> Path:
    return home / SERVER_KEY_FILE


def _new_server_key(home: Path) -> list[str]:
    """A fresh key, written to the home for ``cvcycle sync``; the server flags that require it."""
    from cvcycle.serve.restricted import KEY_HEADER

    key = secrets.token_urlsafe(32)
    path = server_key_file(home)
    path.unlink(missing_ok=True)  # a new file, so that its mode is ours whatever the old one had
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    rule = f"model-repository:{KEY_HEADER}={key}"
    return ["--http-restricted-api", rule, "--grpc-restricted-protocol", rule]


class _Stopped(BaseException):
    """SIGINT or SIGTERM arrived: unwind and stop cleanly."""


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _flag_value(args: list[str], flag: str) -> str | None:
    """The last value given to ``flag`` (``--flag=V`` or ``--flag V``) in ``args``, as typer reads it."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


def _serve_ports(host: str, serve_port: int, extra: list[str]) -> tuple[str, dict[str, tuple[int, str]]]:
    """The inference server's host and its ports by role, each with the flag that moves it."""
    from cvcycle.serve.server import ServerOptions

    defaults = ServerOptions(repo=Path())
    serve_host = _flag_value(extra, "--host") or host
    ports: dict[str, tuple[int, str]] = {}
    for role, flag, default in (
        ("the inference server's HTTP", "--http-port", serve_port),
        ("the inference server's gRPC", "--grpc-port", defaults.grpc_port),
        ("the inference server's metrics", "--metrics-port", defaults.metrics_port),
    ):
        given = _flag_value(extra, flag)
        port = int(given) if given is not None and given.lstrip("-").isdigit() else default
        if port is not None and port >= 0:
            hint = "--serve-port" if flag == "--http-port" and given is None else f"--serve-arg={flag}=N"
            ports[role] = (port, hint)
    return serve_host, ports


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as a server binds it (SO_REUSEADDR); OSError if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _port_taken(host: str, port: int, role: str, flag: str, exc: OSError | None = None) -> Conflict:
    reason = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return Conflict(
        f"port {port} on {host} is taken{reason}: {role} cannot listen there",
        hint=f"stop what listens on port {port}, or pick another port with {flag}",
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _ChildServer:
    """``python -m cvcycle.serve`` in a child process, its stderr held back until it answers."""

    def __init__(self, repo: Path, host: str, port: int, extra: list[str]) -> None:
        repo.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "cvcycle.serve", "--repo", str(repo), "--host", host]
        self.host, self.port = host, port
        self.answered = False
        self._held: list[str] | None = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [*command, "--http-port", str(port), *extra],
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        assert self.process.stderr is not None
        self._relay = threading.Thread(target=self._forward, args=(self.process.stderr,), daemon=True)
        self._relay.start()

    def _forward(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace")
            with self._lock:
                if self._held is not None:
                    self._held.append(line)
                    continue
            sys.stderr.write(line)
            sys.stderr.flush()

    def _release(self) -> list[str]:
        with self._lock:
            held, self._held = self._held or [], None
        return held

    def wait_until_up(self) -> None:
        """Return once its HTTP port answers; ServerUnavailable (with its reason) if it exits first."""
        target = "127.0.0.1" if self.host in ("0.0.0.0", "") else "::1" if self.host == "::" else self.host
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.process.poll() is None:
            try:
                socket.create_connection((target, self.port), timeout=1).close()
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"the inference server did not answer on port {self.port} "
                        f"within {START_TIMEOUT_S:.0f} s",
                        hint="see its log above; --serve-port 0 starts cvcycle without it",
                    ) from None
                time.sleep(0.1)
                continue
            if self.process.poll() is None:
                sys.stderr.writelines(self._release())
                self.answered = True
                return
        self._relay.join(timeout=5)
        held = self._release()
        message = next((line[7:].strip() for line in held if line.startswith("error: ")), None)
        hint = next((line[6:].strip() for line in held if line.startswith("hint: ")), None)
        sys.stderr.writelines(line for line in held if not line.startswith(("error: ", "hint: ")))
        raise ServerUnavailable(
            "the inference server stopped while starting: "
            + (message or f"it exited with code {self.process.returncode}"),
            hint=hint or "see its log above; --serve-port 0 starts cvcycle without it",
        )

    def stop(self) -> None:
        """Terminate it, wait, kill it after STOP_TIMEOUT_S; report an exit code after it answered."""
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._relay.join(timeout=5)
        sys.stderr.writelines(self._release())
        if self.answered and process.returncode not in (0, -signal.SIGTERM):
            err_console.print(f"the inference server exited with code {process.returncode}", highlight=False)


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
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS}
    server: _ChildServer | None = None
    listener: socket.socket | None = None
    try:
        try:
            listener = _bind(host, port)
        except OSError as exc:
            raise _port_taken(host, port, "the web UI and REST API", "--port", exc) from None
        if serve_port:
            serve_host, serve_ports = _serve_ports(host, serve_port, serve_args)
            seen = {port: "the web UI and REST API"} if serve_host == host else {}
            for role, (needed, flag) in serve_ports.items():
                if needed in seen:
                    raise Conflict(
                        f"port {needed} is asked for twice: by {seen[needed]} and by {role}",
                        hint=f"pick another port with {flag}",
                    )
                seen[needed] = role
                if needed:
                    try:
                        _bind(serve_host, needed).close()
                    except OSError as exc:
                        raise _port_taken(serve_host, needed, role, flag, exc) from None
        init_home(settings)
        if serve_port:
            repository = repo or settings.model_repository_dir
            restricted = _new_server_key(settings.home)
            server = _ChildServer(repository, host, serve_port, [*restricted, *serve_args])
            server.wait_until_up()
        url = f"http://{host}:{port}"
        console.print(
            f"cvcycle is up: [bold]{url}[/]  (OpenAPI {url}/openapi.json)",
            highlight=False,
            soft_wrap=True,
        )
        if server is not None:
            served = (
                f"inference server: http://{host}:{serve_port} serving {repository} "
                f"(model-control key in {server_key_file(settings.home)})"
            )
            console.print(served, highlight=False, soft_wrap=True)
        console.print(f"home: {settings.home}   stop with Ctrl+C", highlight=False)
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2
        )
        # uvicorn handles SIGINT/SIGTERM itself, then restores our handlers and re-raises the signal
        uvicorn.Server(config).run(sockets=[listener])
    except _Stopped:
        pass
    finally:
        for sig in STOP_SIGNALS:  # the shutdown below is bounded; a second signal must not cut it short
            signal.signal(sig, signal.SIG_IGN)
        try:
            if server is not None:
                server.stop()
            if listener is not None:
                listener.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    app.command()(up)
