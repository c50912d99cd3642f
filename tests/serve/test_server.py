"""``cvcycle serve`` through the official Triton HTTP client: health, metadata, inference, errors, reloads."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

Affine = Callable[[float, float], bytes]


def client(server: Any) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.url)


def infer_affine(
    c: triton.InferenceServerClient,
    x: np.ndarray,
    *,
    binary_in: bool = True,
    outputs: Any = None,
    version: str = "",
) -> triton.InferResult:
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    return c.infer("affine", [tensor], model_version=version, outputs=outputs)


def error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.message())


def test_health_server_and_model_metadata(serve: Any, publish: Any, affine: Affine) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    c = client(serve())
    assert c.is_server_live() and c.is_server_ready()
    server = c.get_server_metadata()
    assert server["name"] == "cvcycle" and "binary_tensor_data" in server["extensions"]
    assert c.is_model_ready("affine") and c.is_model_ready("affine", "1")
    assert not c.is_model_ready("affine", "2") and not c.is_model_ready("nope")
    meta = c.get_model_metadata("affine")
    assert meta == {
        "name": "affine",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        # total is (B,) in the graph: Triton's layout gives it one dimension, reshaped away.
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "total", "datatype": "FP32", "shape": [-1, 1]},
        ],
    }
    assert c.get_model_metadata("affine", "1")["versions"] == ["1"]
    config = c.get_model_config("affine")
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [4]
    assert config["version_policy"] == {"latest": {"num_versions": 1}}


def test_infer_with_json_and_binary_tensors(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 1.0))
    c = client(serve())
    expected = sample * 2 + 1
    # JSON in, JSON out.
    json_out = [
        triton.InferRequestedOutput("y", binary_data=False),
        triton.InferRequestedOutput("total", binary_data=False),
    ]
    result = infer_affine(c, sample, binary_in=False, outputs=json_out)
    assert result.get_response()["model_version"] == "1"
    np.testing.assert_allclose(result.as_numpy("y"), expected)
    np.testing.assert_allclose(result.as_numpy("total"), expected.sum(1, keepdims=True))
    # Binary in, every output binary (binary_data_output: no outputs named).
    result = infer_affine(c, sample)
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    np.testing.assert_allclose(result.as_numpy("y"), expected)
    # Mixed: one output as JSON, the other as bytes, only the one asked for.
    mixed = [triton.InferRequestedOutput("total", binary_data=True)]
    result = infer_affine(c, sample, binary_in=False, outputs=mixed)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["total"]
    np.testing.assert_allclose(result.as_numpy("total"), expected.sum(1, keepdims=True))
    # Compressed both ways.
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(sample)
    for algorithm in ("gzip", "deflate"):
        result = c.infer(
            "affine",
            [tensor],
            request_compression_algorithm=algorithm,
            response_compression_algorithm=algorithm,
        )
        np.testing.assert_allclose(result.as_numpy("y"), expected)


@pytest.mark.parametrize("binary", [False, True])
def test_every_datatype_round_trips(serve: Any, publish: Any, identities: bytes, binary: bool) -> None:
    publish("identities", 1, identities)
    c = client(serve())
    values = {
        "fp32": (np.array([[1.5, -2.25, 3.0]] * 2, np.float32), "FP32"),
        "fp16": (np.array([[0.5, -1.0, 65504.0]] * 2, np.float16), "FP16"),
        "int64": (np.array([[2**40, -(2**40), 7]] * 2, np.int64), "INT64"),
        "int32": (np.array([[2**30, -5, 0]] * 2, np.int32), "INT32"),
        "uint8": (np.array([[0, 128, 255]] * 2, np.uint8), "UINT8"),
        "bool": (np.array([[True, False, True]] * 2, np.bool_), "BOOL"),
        "bytes": (np.array([["a", "é ü", ""]] * 2, np.object_), "BYTES"),
    }
    inputs = []
    for name, (array, datatype) in values.items():
        tensor = triton.InferInput(f"in_{name}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(f"out_{name}", binary_data=binary) for name in values]
    result = c.infer("identities", inputs, outputs=outputs)
    meta = {o["name"]: o["datatype"] for o in result.get_response()["outputs"]}
    for name, (array, datatype) in values.items():
        assert meta[f"out_{name}"] == datatype
        got = result.as_numpy(f"out_{name}")
        assert got.dtype == array.dtype and got.shape == array.shape
        if datatype == "BYTES":  # the client hands strings back as the UTF-8 bytes that travelled
            got = np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b, otypes=[object])(got)
        np.testing.assert_array_equal(got, array)


def test_errors_name_their_cause(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray, assert_input_errors: Any
) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    c = client(serve())

    message = error_of(lambda: c.get_model_metadata("nope"))
    assert "unknown model 'nope'" in message and "affine" in message

    assert_input_errors(c, triton)

    message = error_of(lambda: infer_affine(c, np.zeros((9, 4), np.float32)))
    assert "batch size 9 exceeds max_batch_size 8" in message

    message = error_of(lambda: infer_affine(c, sample, outputs=[triton.InferRequestedOutput("boxes")]))
    assert "has no output 'boxes'; its outputs are y, total" in message

    top = [triton.InferRequestedOutput("y", class_count=2)]
    message = error_of(lambda: infer_affine(c, sample, outputs=top))
    assert "output 'y' asks for 'classification': the classification extension is not supported" in message
    shared = triton.InferInput("x", [2, 4], "FP32")
    shared.set_shared_memory("region", 32)
    message = error_of(lambda: c.infer("affine", [shared]))
    assert "input 'x' asks for 'shared_memory_region': the shared memory" in message

    message = error_of(lambda: infer_affine(c, sample, version="9"))
    assert "model 'affine' has no version 9" in message and "ready: 1" in message


def test_a_newly_published_version_is_picked_up(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    c = client(serve(poll_interval=0.05))
    np.testing.assert_allclose(infer_affine(c, sample).as_numpy("y"), sample)

    publish("affine", 2, affine(3.0, 0.0))
    # Every request answers, from version 1 until the swap and from version 2 after it.
    answered = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = infer_affine(c, sample)
        answered.append(result.get_response()["model_version"])
        if answered[-1] == "2":
            break
        time.sleep(0.02)
    assert answered[-1] == "2" and set(answered) <= {"1", "2"}
    np.testing.assert_allclose(infer_affine(c, sample).as_numpy("y"), sample * 3)
    assert c.get_model_metadata("affine")["versions"] == ["2"]
    # The old folder stays on disk; the policy (latest 1) says why it is not served.
    message = error_of(lambda: infer_affine(c, sample, version="1"))
    assert (
        "version 1 of model 'affine' is not loaded: not served: the version policy (latest 1) serves 2"
        in message
    )


def test_the_version_policy_latest_two_serves_both(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(1.0, 0.0), num_versions=2)
    publish("affine", 2, affine(2.0, 0.0), num_versions=2)
    publish("affine", 3, affine(3.0, 0.0), num_versions=2)
    c = client(serve())
    assert c.get_model_metadata("affine")["versions"] == ["2", "3"]
    np.testing.assert_allclose(infer_affine(c, sample).as_numpy("y"), sample * 3)  # the newest by default
    np.testing.assert_allclose(infer_affine(c, sample, version="2").as_numpy("y"), sample * 2)
    message = error_of(lambda: infer_affine(c, sample, version="1"))
    assert "the version policy (latest 2) serves 3, 2" in message


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    serve: Any, publish: Any, affine: Affine, repo: Path, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    server = serve(poll_interval=0.05)
    c = client(server)
    broken = repo / "affine" / "2"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    deadline = time.monotonic() + 30
    while 2 not in server.app.state.repository.models["affine"].unavailable and time.monotonic() < deadline:
        time.sleep(0.02)
    np.testing.assert_allclose(infer_affine(c, sample).as_numpy("y"), sample)
    message = error_of(lambda: infer_affine(c, sample, version="2"))
    assert (
        "version 2 of model 'affine' is not loaded: failed to load" in message
        and "ready versions: 1" in message
    )


def test_a_model_without_a_loadable_version_says_why(serve: Any, repo: Path) -> None:
    (repo / "empty").mkdir()
    (repo / "empty" / "config.pbtxt").write_text(
        'name: "empty"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 1\n'
    )
    (repo / "python").mkdir()
    (repo / "python" / "config.pbtxt").write_text('backend: "python"\n')
    (repo / "python" / "1").mkdir()
    c = client(serve())
    message = error_of(lambda: c.get_model_metadata("empty"))
    assert "model 'empty' is not ready: no version is ready (no version folders in" in message
    message = error_of(lambda: c.get_model_metadata("python"))
    assert "version 1 failed to load: platform 'python' is not served here" in message


def test_serve_imports_neither_torch_nor_the_database() -> None:
    code = (
        "import sys, cvcycle.serve, cvcycle.serve.__main__, cvcycle.serve.client; "
        "bad = [m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'sqlalchemy') or m.startswith('cvcycle.db')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_http_app_alone_polls_while_it_runs(publish: Any, affine: Affine, repo: Path) -> None:
    """``create_app``: the HTTP app by itself under uvicorn, as the demo runs it."""
    import threading

    import uvicorn

    from cvcycle.serve import create_app

    publish("affine", 1, affine(1.0, 0.0))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(repo, poll_interval=0.05), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        c = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
            time.sleep(0.01)
        assert c.is_model_ready("affine", "1")
        publish("affine", 2, affine(2.0, 0.0))
        while not c.is_model_ready("affine", "2"):
            assert time.monotonic() < deadline, "version 2 was never picked up"
            time.sleep(0.02)
        assert c.get_model_metadata("affine")["versions"] == ["2"]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
