"""Starting the server from the command line: ``cvcycle serve`` and ``python -m cvcycle.serve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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


def test_the_server_process_serves_and_stops_on_sigint(
    repo: Path, publish: Any, affine: Callable[[float, float], bytes], sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cvcycle.serve",
            "--repo",
            str(repo),
            "--http-port",
            str(port),
            "--poll",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
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
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "loaded affine version 1" in output
