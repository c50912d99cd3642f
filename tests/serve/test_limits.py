"""The server's bounds and its readiness, over real sockets: input caps, bounded decompression,
gRPC message size, readiness that tells the truth, failed loads as errors, no server paths in errors."""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

Affine = Callable[[float, float], bytes]

CAP = 2**20  # a 1 MiB cap keeps the requests small


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed a piece at a time (about a thousandth of the size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    piece = bytes(2**20)
    parts = [compressor.compress(piece) for _ in range(size // len(piece))]
    return b"".join(parts) + compressor.flush()


def wait_until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def break_model(repo: Path, name: str, version: int = 1) -> None:
    (repo / name / str(version) / "model.onnx").write_bytes(b"not an onnx graph")


def publish_with_broken(publish: Any, affine: Affine, repo: Path) -> None:
    """``affine`` as it should be, and ``broken`` whose version 1 file is no ONNX graph."""
    publish("affine", 1, affine(2.0, 0.0))
    publish("broken", 1, affine(1.0, 0.0))
    break_model(repo, "broken")


def test_content_length_over_the_cap_is_refused_before_the_body_is_sent(
    serve: Any, publish: Any, affine: Affine
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(http_max_input_size=CAP)
    host, port = server.url.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v2/models/affine/infer HTTP/1.1\r\nHost: localhost\r\n"
            + f"Content-Length: {64 * CAP}\r\nContent-Type: application/json\r\n\r\n".encode()
        )  # the headers alone: the answer comes without any of the body
        answer = b""
        while b"}" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed without answering: {answer!r}"
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
    assert f"exceeds the limit of {CAP} bytes".encode() in answer and b"--http-max-input-size" in answer


def test_bodies_over_the_cap_get_400_naming_the_limit(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(http_max_input_size=CAP)
    base = f"http://{server.url}"

    def chunked() -> Iterator[bytes]:  # no Content-Length: read until past the cap, then refused
        for _ in range(4):
            yield bytes(CAP // 2)

    for url in (f"{base}/v2/models/affine/infer", f"{base}/v2/repository/index"):
        answer = httpx.post(url, content=chunked())
        assert answer.status_code == 400
        assert f"exceeds the limit of {CAP} bytes" in answer.json()["error"]
        assert "--http-max-input-size" in answer.json()["error"]

    # Under the cap, the same routes answer as before; and through tritonclient too.
    c = triton.InferenceServerClient(url=server.url)
    tensor = triton.InferInput("x", list(sample.shape), "FP32")
    tensor.set_data_from_numpy(sample)
    np.testing.assert_allclose(c.infer("affine", [tensor]).as_numpy("y"), sample * 2)
    big = np.zeros((CAP // 16 + 1, 4), np.float32)  # 4 bytes over the cap in raw tensor bytes alone
    tensor = triton.InferInput("x", list(big.shape), "FP32")
    tensor.set_data_from_numpy(big)
    with pytest.raises(InferenceServerException) as info:
        c.infer("affine", [tensor])
    assert info.value.status() == "400" and "--http-max-input-size" in str(info.value.message())


def test_a_gzip_bomb_is_refused_past_the_cap(serve: Any, publish: Any, affine: Affine) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(http_max_input_size=CAP)
    bomb = gzip_bomb(64 * CAP)
    assert len(bomb) < CAP // 8
    for path in ("/v2/models/affine/infer", "/v2/repository/index"):
        answer = httpx.post(f"http://{server.url}{path}", content=bomb, headers={"Content-Encoding": "gzip"})
        assert answer.status_code == 400
        message = answer.json()["error"]
        assert f"decompressed exceeds the limit of {CAP} bytes" in message
    # A deflate bomb too, and a small gzip body still works.
    deflater = zlib.compressobj(9)
    deflated = deflater.compress(bytes(4 * CAP)) + deflater.flush()
    answer = httpx.post(
        f"http://{server.url}/v2/repository/index", content=deflated, headers={"Content-Encoding": "deflate"}
    )
    assert answer.status_code == 400 and "decompressed exceeds" in answer.json()["error"]
    small = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = small.compress(b'{"ready": true}') + small.flush()
    answer = httpx.post(
        f"http://{server.url}/v2/repository/index", content=body, headers={"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200 and [row["name"] for row in answer.json()] == ["affine"]


def test_a_grpc_message_over_the_size_gets_resource_exhausted(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(grpc_max_message_size=CAP)
    c = triton_grpc.InferenceServerClient(url=server.grpc_url)
    tensor = triton_grpc.InferInput("x", list(sample.shape), "FP32")
    tensor.set_data_from_numpy(sample)
    np.testing.assert_allclose(c.infer("affine", [tensor]).as_numpy("y"), sample * 2)
    big = np.zeros((CAP // 16 + 1, 4), np.float32)
    tensor = triton_grpc.InferInput("x", list(big.shape), "FP32")
    tensor.set_data_from_numpy(big)
    with pytest.raises(InferenceServerException) as info:
        c.infer("affine", [tensor])
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_poll_mode_is_ready_only_when_every_model_is(
    serve: Any, publish: Any, affine: Affine, repo: Path
) -> None:
    publish_with_broken(publish, affine, repo)
    server = serve()
    c = triton.InferenceServerClient(url=server.url)
    g = triton_grpc.InferenceServerClient(url=server.grpc_url)
    assert c.is_model_ready("affine") and not c.is_server_ready() and not g.is_server_ready()
    answer = httpx.get(f"http://{server.url}/v2/health/ready")
    assert answer.status_code == 400 and "'broken'" in answer.json()["error"]

    index = {row["name"]: row for row in c.get_model_repository_index()}
    assert index["broken"]["state"] == "UNAVAILABLE" and index["broken"]["version"] == "1"
    reason = index["broken"]["reason"]
    assert "failed to load" in reason and "broken/1/model.onnx" in reason
    assert str(repo) not in reason and str(repo) not in answer.text

    publish("broken", 2, affine(1.0, 0.0))  # the policy serves the latest: version 2 loads
    wait_until(c.is_server_ready)
    assert g.is_server_ready()


def test_explicit_mode_readiness_failed_loads_and_paths(
    serve: Any, publish: Any, affine: Affine, repo: Path
) -> None:
    publish_with_broken(publish, affine, repo)
    server = serve(control_mode="explicit", load_models=["affine"])
    c = triton.InferenceServerClient(url=server.url)
    assert c.is_server_ready()  # "broken" was never asked for

    with pytest.raises(InferenceServerException) as info:
        c.load_model("broken")
    message = str(info.value.message())
    assert info.value.status() == "400" and "failed to load 'broken'" in message
    assert "broken/1/model.onnx" in message and str(repo) not in message
    assert not c.is_server_ready()  # asked for and not served
    c.unload_model("broken")
    assert c.is_server_ready()

    with pytest.raises(InferenceServerException) as info:
        c.load_model("nowhere")
    assert "no model directory 'nowhere'" in str(info.value.message())
    assert str(repo) not in str(info.value.message())

    # A reload whose file is now broken is an error; the load before it serves on, and says so.
    break_model(repo, "affine")
    with pytest.raises(InferenceServerException) as info:
        c.load_model("affine")
    message = str(info.value.message())
    assert "version 1 of 'affine' failed to load" in message and "still serving version 1" in message
    row = next(r for r in c.get_model_repository_index() if r["name"] == "affine")
    assert row["state"] == "READY" and "failed to load" in row["reason"]
    assert c.is_model_ready("affine")


def test_explicit_mode_not_ready_while_a_named_model_is_missing(
    serve: Any, publish: Any, affine: Affine
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(control_mode="explicit", load_models=["affine", "later"])
    c = triton.InferenceServerClient(url=server.url)
    assert c.is_model_ready("affine") and not c.is_server_ready()
    publish("later", 1, affine(1.0, 0.0))
    c.load_model("later")
    assert c.is_server_ready()
