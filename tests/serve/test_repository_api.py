"""Model control through the repository API (index, load, unload) with the official clients, both modes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from cvcycle.registry.triton import VersionPolicy

Affine = Callable[[float, float], bytes]


def error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.message())


def infer_y(c: Any, module: Any, x: np.ndarray, model: str = "affine", version: str = "") -> Any:
    tensor = module.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return c.infer(model, [tensor], model_version=version)


def test_explicit_mode_loads_and_unloads_on_request_over_http(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    publish("other", 1, affine(1.0, 0.0))
    server = serve(control_mode="explicit", load_models=["other"])
    c = triton.InferenceServerClient(url=server.url)
    index = {row["name"]: row for row in c.get_model_repository_index()}
    assert index["other"] == {"name": "other", "version": "1", "state": "READY", "reason": ""}
    assert index["affine"]["state"] == "UNAVAILABLE" and "not loaded" in index["affine"]["reason"]
    message = error_of(lambda: infer_y(c, triton, sample))
    assert "model 'affine' is in the repository but not loaded" in message
    assert "POST /v2/repository/models/affine/load" in message

    c.load_model("affine")
    assert c.is_model_ready("affine")
    np.testing.assert_allclose(infer_y(c, triton, sample).as_numpy("y"), sample * 2)
    assert [row["name"] for row in c.get_model_repository_index() if row["state"] == "READY"] == [
        "affine",
        "other",
    ]

    c.unload_model("affine")
    assert not c.is_model_ready("affine")
    assert "it was unloaded" in error_of(lambda: infer_y(c, triton, sample))
    index = {row["name"]: row for row in c.get_model_repository_index()}
    assert index["affine"] == {"name": "affine", "state": "UNAVAILABLE", "reason": "unloaded"}
    ready = httpx.post(f"http://{server.url}/v2/repository/index", json={"ready": True}).json()
    assert [row["name"] for row in ready] == ["other"]

    message = error_of(lambda: c.load_model("nope"))
    assert "failed to load 'nope': no model directory" in message and "affine, other" in message


def test_a_failed_load_names_the_runtime_error_everywhere(
    serve: Any, publish: Any, affine: Affine, repo: Path, sample: np.ndarray
) -> None:
    publish("detector", 1, affine(1.0, 0.0))
    server = serve(control_mode="explicit", load_models=["detector"])
    http = triton.InferenceServerClient(url=server.url)
    grpc = triton_grpc.InferenceServerClient(url=server.grpc_url)
    broken = repo / "detector" / "3"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")

    for c in (http, grpc):
        message = error_of(lambda c=c: c.load_model("detector"))
        assert message.startswith("version 3 of 'detector' failed to load: ")
        assert "INVALID_PROTOBUF" in message and "(still serving version 1)" in message
    # The old version keeps serving; the index and inference both say why version 3 does not.
    np.testing.assert_allclose(infer_y(http, triton, sample, "detector").as_numpy("y"), sample)
    (row,) = [r for r in http.get_model_repository_index() if r.get("version") == "3"]
    assert row["state"] == "UNAVAILABLE" and "failed to load:" in row["reason"]
    assert "INVALID_PROTOBUF" in row["reason"]
    grpc_rows = grpc.get_model_repository_index().models
    assert any(r.version == "3" and "INVALID_PROTOBUF" in r.reason for r in grpc_rows)
    message = error_of(lambda: infer_y(grpc, triton_grpc, sample, "detector", "3"))
    assert "version 3 of model 'detector' is not loaded: failed to load:" in message


def test_grpc_load_unload_and_index(serve: Any, publish: Any, affine: Affine, sample: np.ndarray) -> None:
    publish("affine", 1, affine(3.0, 0.0))
    server = serve(control_mode="explicit")
    c = triton_grpc.InferenceServerClient(url=server.grpc_url)
    assert [(m.name, m.state) for m in c.get_model_repository_index().models] == [("affine", "UNAVAILABLE")]
    c.load_model("affine")
    np.testing.assert_allclose(infer_y(c, triton_grpc, sample).as_numpy("y"), sample * 3)
    assert [(m.name, m.version, m.state) for m in c.get_model_repository_index().models] == [
        ("affine", "1", "READY")
    ]
    c.unload_model("affine")
    assert not c.is_model_ready("affine")
    assert "not loaded" in error_of(lambda: infer_y(c, triton_grpc, sample))


def test_load_with_a_config_override(serve: Any, publish: Any, affine: Affine, sample: np.ndarray) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    publish("affine", 2, affine(2.0, 0.0))
    server = serve(control_mode="explicit")
    c = triton.InferenceServerClient(url=server.url)
    config = {
        "name": "affine",
        "platform": "onnxruntime_onnx",
        "max_batch_size": 8,
        "version_policy": {"specific": {"versions": [1]}},
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
    }
    c.load_model("affine", config=json.dumps(config))
    assert c.get_model_metadata("affine")["versions"] == ["1"]
    assert c.get_model_config("affine")["version_policy"] == {"specific": {"versions": [1]}}
    message = error_of(lambda: c.load_model("affine", config='{"max_batch_size": "many"}'))
    assert "the config parameter does not parse as a Triton ModelConfig" in message


def test_poll_mode_refuses_unload_and_reloads_on_load(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(1.0, 0.0))
    server = serve(poll_interval=0)  # never polls by itself: only a load request rescans
    c = triton.InferenceServerClient(url=server.url)
    message = error_of(lambda: c.unload_model("affine"))
    assert "cannot unload 'affine': the server polls the repository" in message
    publish("affine", 2, affine(5.0, 0.0))
    assert infer_y(c, triton, sample).get_response()["model_version"] == "1"
    c.load_model("affine")
    assert infer_y(c, triton, sample).get_response()["model_version"] == "2"


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        (VersionPolicy.latest(2), ["2", "3"]),
        (VersionPolicy.all(), ["1", "2", "3"]),
        (VersionPolicy.specific(1, 3), ["1", "3"]),
    ],
)
def test_version_policies_are_honoured(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray, policy: VersionPolicy, served: list[str]
) -> None:
    for version in (1, 2, 3):
        publish("affine", version, affine(float(version), 0.0), policy=policy)
    server = serve(control_mode="explicit", load_models=["*"])
    c = triton.InferenceServerClient(url=server.url)
    assert c.get_model_metadata("affine")["versions"] == served
    for version in served:
        result = infer_y(c, triton, sample, version=version)
        np.testing.assert_allclose(result.as_numpy("y"), sample * int(version))
    for version in {"1", "2", "3"} - set(served):
        message = error_of(lambda v=version: infer_y(c, triton, sample, version=v))
        assert f"version {version} of model 'affine' is not loaded: not served: the version policy" in message
    states = {r["version"]: r["state"] for r in c.get_model_repository_index()}
    assert {v for v, s in states.items() if s == "READY"} == set(served)


def test_a_swap_under_load_drops_no_request(
    serve: Any, publish: Any, affine: Affine, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(1.0, 0.0), dynamic_batching=None)
    server = serve(control_mode="explicit", load_models=["affine"])
    # Answers per client: a thread may be descheduled between its answer and the append, so the
    # order across clients says nothing; each client's own order is what must switch once.
    per_client: list[list[tuple[str, float]]] = [[], []]
    failures: list[str] = []
    stop = threading.Event()

    def client_loop(module: Any, url: str, answers: list[tuple[str, float]]) -> None:
        c = module.InferenceServerClient(url=url)
        while not stop.is_set():
            try:
                result = infer_y(c, module, sample)
            except InferenceServerException as exc:
                failures.append(str(exc))
                continue
            version = result.get_response()
            version = version["model_version"] if isinstance(version, dict) else version.model_version
            answers.append((version, float(result.as_numpy("y")[0, 1])))

    threads = [
        threading.Thread(target=client_loop, args=(triton, server.url, per_client[0])),
        threading.Thread(target=client_loop, args=(triton_grpc, server.grpc_url, per_client[1])),
    ]
    for thread in threads:
        thread.start()
    try:
        triton.InferenceServerClient(url=server.url).load_model("affine")  # a reload of the same files
        publish("affine", 2, affine(3.0, 0.0))
        triton.InferenceServerClient(url=server.url).load_model("affine")
        seen = [len(answers) for answers in per_client]
        while any(len(a) < n + 10 for a, n in zip(per_client, seen, strict=True)) and not failures:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    for answers in per_client:
        versions = [v for v, _ in answers]
        switch = versions.index("2")  # every client ends on the new version...
        assert set(versions[:switch]) == {"1"} or versions[:switch] == []
        assert all(v == "2" for v in versions[switch:])  # ...and never goes back
        assert {(v, y) for v, y in answers} <= {("1", 1.0), ("2", 3.0)}
