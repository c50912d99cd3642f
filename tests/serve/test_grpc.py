"""``cvcycle serve`` through the official Triton gRPC client: health, metadata, config, inference, errors."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.http as triton_http
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

Affine = Callable[[float, float], bytes]


def client(server: Any) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.grpc_url)


def error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.message())


def infer_affine(c: triton.InferenceServerClient, x: np.ndarray, version: str = "") -> triton.InferResult:
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return c.infer("affine", [tensor], model_version=version)


def test_health_metadata_and_config(serve: Any, publish: Any, affine: Affine) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    c = client(serve())
    assert c.is_server_live() and c.is_server_ready()
    server = c.get_server_metadata(as_json=True)
    assert server["name"] == "cvcycle" and "model_repository" in server["extensions"]
    assert c.is_model_ready("affine") and not c.is_model_ready("affine", "2") and not c.is_model_ready("nope")
    meta = c.get_model_metadata("affine", as_json=True)
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "4"]}]
    config = c.get_model_config("affine").config
    assert isinstance(config, model_config_pb2.ModelConfig)
    assert config.name == "affine" and config.max_batch_size == 8
    assert config.version_policy.latest.num_versions == 1 and list(config.input[0].dims) == [4]


def test_infer_with_raw_tensors(serve: Any, publish: Any, affine: Affine, sample: np.ndarray) -> None:
    publish("affine", 1, affine(2.0, 1.0))
    c = client(serve())
    result = infer_affine(c, sample)
    assert result.get_response().model_version == "1"
    np.testing.assert_allclose(result.as_numpy("y"), sample * 2 + 1)
    np.testing.assert_allclose(result.as_numpy("total"), (sample * 2 + 1).sum(1, keepdims=True))
    # Only the outputs asked for come back.
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(sample)
    only = c.infer("affine", [tensor], outputs=[triton.InferRequestedOutput("total")], request_id="r-7")
    assert [o.name for o in only.get_response().outputs] == ["total"] and only.get_response().id == "r-7"


def test_messages_over_grpcs_default_limit_pass(serve: Any, publish: Any, identities: bytes) -> None:
    publish("identities", 1, identities)
    c = client(serve())
    # gRPC refuses messages over 4 MiB unless the server raises the limit: 12 MiB each way here.
    huge = "x" * (6 * 1024 * 1024)
    inputs = []
    for name, datatype, array in [
        ("fp32", "FP32", np.zeros((2, 3), np.float32)),
        ("fp16", "FP16", np.zeros((2, 3), np.float16)),
        ("int64", "INT64", np.zeros((2, 3), np.int64)),
        ("int32", "INT32", np.zeros((2, 3), np.int32)),
        ("uint8", "UINT8", np.zeros((2, 3), np.uint8)),
        ("bool", "BOOL", np.zeros((2, 3), np.bool_)),
        ("bytes", "BYTES", np.array([[huge, "", "a"]] * 2, np.object_)),
    ]:
        tensor = triton.InferInput(f"in_{name}", [2, 3], datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = c.infer("identities", inputs)
    assert result.as_numpy("out_bytes")[0, 0] == huge.encode()


def test_every_datatype_round_trips(serve: Any, publish: Any, identities: bytes) -> None:
    publish("identities", 1, identities)
    c = client(serve())
    values = {
        "fp32": (np.array([[1.5, -2.25, 3.0]] * 2, np.float32), "FP32"),
        "fp16": (np.array([[0.5, -1.0, 65504.0]] * 2, np.float16), "FP16"),
        "int64": (np.array([[2**40, -(2**40), 7]] * 2, np.int64), "INT64"),
        "int32": (np.array([[2**30, -5, 0]] * 2, np.int32), "INT32"),
        "uint8": (np.array([[0, 128, 255]] * 2, np.uint8), "UINT8"),
        "bool": (np.array([[True, False, True]] * 2, np.bool_), "BOOL"),
        "bytes": (np.array([[b"a", "é ü".encode(), b""]] * 2, np.object_), "BYTES"),
    }
    inputs = []
    for name, (array, datatype) in values.items():
        tensor = triton.InferInput(f"in_{name}", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = c.infer("identities", inputs)
    meta = {o.name: o.datatype for o in result.get_response().outputs}
    for name, (array, datatype) in values.items():
        assert meta[f"out_{name}"] == datatype
        got = result.as_numpy(f"out_{name}")
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)


def test_errors_name_their_cause(
    serve: Any, publish: Any, affine: Affine, repo: Path, sample: np.ndarray, assert_input_errors: Any
) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    server = serve(poll_interval=0)
    c = client(server)
    broken = repo / "affine" / "2"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    server.repository.poll()

    message = error_of(lambda: c.get_model_metadata("nope"))
    assert "unknown model 'nope'" in message and "affine" in message

    assert_input_errors(c, triton)

    # Version 2 is newest but broken: version 1 serves, and version 2 says why it does not.
    np.testing.assert_allclose(infer_affine(c, sample).as_numpy("y"), sample)
    message = error_of(lambda: infer_affine(c, sample, version="2"))
    assert "version 2 of model 'affine' is not loaded: failed to load:" in message
    assert "affine/2/model.onnx" in message and "ONNXRuntimeError" in message  # no server path
    assert str(broken) not in message

    message = error_of(lambda: infer_affine(c, sample, version="7"))
    assert "model 'affine' has no version 7" in message

    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(sample)
    top = [triton.InferRequestedOutput("y", class_count=2)]
    message = error_of(lambda: c.infer("affine", [tensor], outputs=top))
    assert "output 'y' asks for 'classification': the classification extension is not supported" in message
    shared = triton.InferInput("x", [2, 4], "FP32")
    shared.set_shared_memory("region", 32)
    message = error_of(lambda: c.infer("affine", [shared]))
    assert "input 'x' asks for 'shared_memory_region': the shared memory" in message


def test_statistics_and_metrics_count_requests(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    server = serve()
    c = client(server)
    for _ in range(3):
        infer_affine(c, sample)
    error_of(lambda: infer_affine(c, np.zeros((2, 5), np.float32)))
    http = triton_http.InferenceServerClient(url=server.url)
    for stats in (
        c.get_inference_statistics("affine", as_json=True),
        http.get_inference_statistics("affine"),
    ):
        (model,) = stats["model_stats"]
        assert model["name"] == "affine" and model["version"] == "1"
        assert int(model["inference_count"]) == 6 and int(model["execution_count"]) == 3
        assert int(model["inference_stats"]["success"]["count"]) == 3
        assert int(model["inference_stats"]["fail"]["count"]) == 1
        assert int(model["inference_stats"]["compute_infer"]["count"]) == 3
        assert [int(b["batch_size"]) for b in model["batch_stats"]] == [2]
    assert http.get_inference_statistics()["model_stats"][0]["name"] == "affine"
    metrics = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    labels = '{model="affine",version="1"}'
    for line in [
        f"nv_inference_request_success{labels} 3.0",
        f"nv_inference_request_failure{labels} 1.0",
        f"nv_inference_count{labels} 6.0",
        f"nv_inference_exec_count{labels} 3.0",
        f"nv_inference_pending_request_count{labels} 0.0",
    ]:
        assert line in metrics
    for name in [
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
    ]:
        assert f"{name}{labels} " in metrics
