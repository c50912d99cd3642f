"""Malformed requests at the HTTP level: each refused with a 4xx and a message naming what is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest


@pytest.fixture
def http(serve: Any, publish: Any, affine: Callable[[float, float], bytes]) -> Iterator[httpx.Client]:
    publish("affine", 1, affine(1.0, 0.0))
    with httpx.Client(base_url=f"http://{serve(poll_interval=0).url}") as client:
        yield client


def infer(http: httpx.Client, header: dict[str, Any], binary: bytes = b"", **headers: str) -> Any:
    body = json.dumps(header).encode()
    if binary:
        headers["Inference-Header-Content-Length"] = str(len(body))
    return http.post("/v2/models/affine/infer", content=body + binary, headers=headers)


X = {"name": "x", "shape": [1, 4], "datatype": "FP32"}


@pytest.mark.parametrize(
    ("header", "binary", "status", "message"),
    [
        ({"inputs": []}, b"", 400, "the request has no 'inputs' list"),
        ({"inputs": [{**X, "data": [1, 2, 3]}]}, b"", 400, "shape [1, 4] needs 4 values, 'data' has 3"),
        ({"inputs": [{**X, "data": ["a", "b", "c", "d"]}]}, b"", 400,
         "'data' is not a list of FP32 values"),
        ({"inputs": [{**X, "datatype": "BF16", "data": [1, 2, 3, 4]}]}, b"", 400,
         "datatype 'BF16' is not supported"),
        ({"inputs": [{**X, "datatype": "BYTES", "data": [1, 2, 3, 4]}]}, b"", 400,
         "BYTES 'data' must hold strings, got 1"),
        ({"inputs": [{**X, "shape": [1, -4], "data": []}]}, b"", 400,
         "'shape' must be a list of non-negative"),
        ({"inputs": [X]}, b"", 400, "input 'x' has neither 'data' nor parameters.binary_data_size"),
        ({"inputs": [{**X, "parameters": {"binary_data_size": 12}}]}, bytes(12), 400,
         "binary_data_size 12 does not match shape [1, 4] of FP32 (16 bytes)"),
        ({"inputs": [{**X, "parameters": {"binary_data_size": 16}}]}, bytes(20), 400,
         "carries 20 bytes of binary data but its inputs' binary_data_size add up to 16"),
        ({"inputs": [{**X, "data": [0] * 4}, {**X, "data": [0] * 4}]}, b"", 400, "input 'x' appears twice"),
        ({"inputs": [{**X, "data": [0] * 4}], "parameters": [1]}, b"", 400,
         "parameters of the request must be"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_with_the_reason(
    http: httpx.Client, header: dict[str, Any], binary: bytes, status: int, message: str
) -> None:
    response = infer(http, header, binary)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_a_body_that_is_not_json_and_bad_encodings(http: httpx.Client) -> None:
    response = http.post("/v2/models/affine/infer", content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = http.post("/v2/models/affine/infer", content=b"{}", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "not valid gzip data" in response.json()["error"]
    response = http.post("/v2/models/affine/infer", content=b"{}", headers={"Content-Encoding": "br"})
    assert response.status_code == 400 and "unsupported Content-Encoding 'br'" in response.json()["error"]
    response = infer(
        http, {"inputs": [{**X, "data": [0] * 4}]}, **{"Inference-Header-Content-Length": "9999"}
    )
    assert response.status_code == 400 and "does not fit a body" in response.json()["error"]


def test_the_response_with_binary_outputs_carries_the_header_length(http: httpx.Client) -> None:
    header = {
        "inputs": [{**X, "data": [1, 2, 3, 4]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
    }
    response = infer(http, header)
    assert response.status_code == 200
    length = int(response.headers["Inference-Header-Content-Length"])
    meta = json.loads(response.content[:length])
    assert meta["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}
    ]
    np.testing.assert_array_equal(np.frombuffer(response.content[length:], "<f4"), [1, 2, 3, 4])


def test_unknown_routes_and_versions(http: httpx.Client) -> None:
    response = http.get("/v1/models")
    assert response.status_code == 404 and "the KServe v2 routes are under /v2" in response.json()["error"]
    response = http.get("/v2/models/affine/versions/one")
    assert response.status_code == 400 and "model version 'one' is not a number" in response.json()["error"]
    assert http.get("/v2/models/affine/versions/1/ready").status_code == 200
    assert http.get("/v2/health/live").status_code == 200


def test_inference_paths_and_methods(http: httpx.Client) -> None:
    header = json.dumps({"inputs": [{**X, "data": [1, 2, 3, 4]}]}).encode()
    assert http.post("/v2/models/affine/versions/1/infer", content=header).json()["model_version"] == "1"
    response = http.get("/v2/models/affine/infer")
    assert response.status_code == 405
    response = http.post("/v2/models/nothing/infer", content=header)
    assert response.status_code == 404 and "unknown model 'nothing'" in response.json()["error"]
    response = http.post("/v2/models/affine/versions/one/infer", content=header)
    assert response.status_code == 400 and "model version 'one' is not a number" in response.json()["error"]


def test_responses_are_compressed_from_a_kilobyte_as_the_client_accepts(http: httpx.Client) -> None:
    for request_id, encoding in [("small", None), ("large" * 300, "gzip")]:  # the id comes back
        header = {"id": request_id, "inputs": [{**X, "data": [1, 2, 3, 4]}]}
        response = infer(http, header, **{"Accept-Encoding": "gzip"})
        assert response.status_code == 200 and response.headers.get("content-encoding") == encoding
        assert response.json()["id"] == request_id
