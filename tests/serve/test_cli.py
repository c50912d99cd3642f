"""Starting the server from the command line: ``cvcycle serve`` and ``python -m cvcycle.serve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
import typer
from typer.testing import CliRunner

from cvcycle.cli.serve import register


def test_serve_command_names_a_missing_repository(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command, so that Typer keeps `serve` as a sub-command
    result = CliRunner().invoke(app, ["serve", "--repo", str(tmp_path / "nowhere"), "--http-port", "0"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())  # the console wraps long lines
    assert f"model repository {tmp_path / 'nowhere'} does not exist" in output


def test_the_module_names_a_missing_repository_in_one_line(tmp_path: Path) -> None:
    """``python -m cvcycle.serve`` takes ``cvcycle serve``'s flags, aliases included."""
    missing = tmp_path / "nowhere"
    command = [sys.executable, "-m", "cvcycle.serve", "--repo", str(missing), "--http-port", "0"]
    for poll in (["--poll", "0"], ["--repository-poll-secs", "0"], ["--poll-interval", "0"]):
        result = subprocess.run([*command, *poll], capture_output=True, text=True, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        error, hint = result.stderr.splitlines()
        assert error == f"error: model repository {missing} does not exist"
        assert hint.startswith("hint: ")
    unknown = subprocess.run([*command, "--no-such-flag"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 2 and "No such option" in unknown.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_server_process_serves_every_port_and_stops_on_sigint(
    repo: Path, publish: Any, affine: Callable[[float, float], bytes], sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    publish("other", 1, affine(1.0, 0.0))
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cvcycle.serve",
            "--repo",
            str(repo),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
            "--metrics-port",
            str(metrics_port),
            "--model-control-mode",
            "explicit",
            "--load-model",
            "affine",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{http_port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.is_server_ready():
                    break
            except (ConnectionError, OSError):
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        tensor = triton.InferInput("x", [2, 4], "FP32")
        tensor.set_data_from_numpy(sample)
        np.testing.assert_allclose(client.infer("affine", [tensor]).as_numpy("y"), sample * 2)
        assert not client.is_model_ready("other")  # explicit mode: only what --load-model named
        grpc_client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
        grpc_tensor = triton_grpc.InferInput("x", [2, 4], "FP32")
        grpc_tensor.set_data_from_numpy(sample)
        np.testing.assert_allclose(grpc_client.infer("affine", [grpc_tensor]).as_numpy("y"), sample * 2)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
        assert b'nv_inference_request_success{model="affine",version="1"} 2.0' in metrics
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "loaded affine version 1" in output and "other" not in output
