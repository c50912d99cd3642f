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
