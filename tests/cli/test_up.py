"""``cvcycle up`` starts the web UI with the API and the inference server, and stops both."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cvcycle.db import open_database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.home import init_home
from cvcycle.settings import Settings
from cvcycle.store import open_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[str], seconds: float = 90) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def test_up_serves_the_ui_the_api_and_the_inference_server(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    init_home(settings)
    db = open_database(settings)
    fill_sample_home(db, open_store(settings))
    db.dispose()
    port, serve_port = _free_port(), _free_port()
    cvcycle = str(Path(sys.executable).parent / "cvcycle")
    command = [cvcycle, "up", "--port", str(port), "--serve-port", str(serve_port)]
    if importlib.util.find_spec("cvcycle.serve.options") is not None:  # a server with gRPC and metrics
        command += ["--serve-arg=--grpc-port=-1", "--serve-arg=--metrics-port=-1"]
    env = {**os.environ, "CVCYCLE_HOME": str(settings.home), "COLUMNS": "200"}
    env.pop("CVCYCLE_DB_URL", None)
    env.pop("CVCYCLE_STORE_URL", None)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/api/health", process).status_code == 200
        assert "<main" in httpx.get(f"http://127.0.0.1:{port}/dashboard").text
        paths = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["paths"]
        assert "/api/events/stream" in paths
        events = httpx.get(f"http://127.0.0.1:{port}/api/events").json()
        assert len(events) == 12
        assert _wait_for(f"http://127.0.0.1:{serve_port}/v2/health/live", process).status_code == 200
        assert (settings.home / "model-repository").is_dir()
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert f"cvcycle is up: http://127.0.0.1:{port}" in output
    assert f"inference server: http://127.0.0.1:{serve_port}" in output
    try:
        httpx.get(f"http://127.0.0.1:{serve_port}/v2/health/live", timeout=2)
        raise AssertionError("the inference server outlived `cvcycle up`")
    except httpx.HTTPError:
        pass


def _up(home: Path, *args: str) -> subprocess.Popen[str]:
    cvcycle = str(Path(sys.executable).parent / "cvcycle")
    env = {**os.environ, "CVCYCLE_HOME": str(home), "COLUMNS": "200"}
    env.pop("CVCYCLE_DB_URL", None)
    env.pop("CVCYCLE_STORE_URL", None)
    command = [cvcycle, "up", *args, "--serve-arg=--grpc-port=-1", "--serve-arg=--metrics-port=-1"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" not in status.read_text()


def test_sigterm_stops_up_and_its_inference_server(tmp_path: Path) -> None:
    port, serve_port = _free_port(), _free_port()
    process = _up(tmp_path / "home", "--port", str(port), "--serve-port", str(serve_port))
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/api/health", process).status_code == 200
        assert _wait_for(f"http://127.0.0.1:{serve_port}/v2/health/live", process).status_code == 200
        children = _children(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "cvcycle is up" in output
    if sys.platform == "linux":
        assert len(children) == 1
        assert not _alive(children[0]), "the inference server outlived `cvcycle up`"
    with socket.socket() as s:  # its port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", serve_port))


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        for args, flag in (
            (["--port", str(busy), "--serve-port", str(_free_port())], "--port"),
            (["--port", str(_free_port()), "--serve-port", str(busy)], "--serve-port"),
        ):
            process = _up(tmp_path / "home", *args)
            output, errors = process.communicate(timeout=60)
            assert process.returncode == 2, errors
            assert "cvcycle is up" not in output
            lines = errors.strip().splitlines()
            assert len(lines) == 2, errors
            assert lines[0].startswith("error: ") and f"port {busy}" in lines[0]
            assert lines[1].startswith("hint: ") and flag in lines[1]
        assert not (tmp_path / "home").exists()  # nothing was started, not even the home


def test_up_reports_an_inference_server_that_dies_while_starting(tmp_path: Path) -> None:
    port, serve_port = _free_port(), _free_port()
    process = _up(
        tmp_path / "home",
        "--port",
        str(port),
        "--serve-port",
        str(serve_port),
        "--serve-arg=--model-control-mode=no",
    )
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 2, errors
    assert "cvcycle is up" not in output
    assert errors.count("error:") == 1
    assert "error: the inference server stopped while starting: unknown model control mode 'no'" in errors
