"""Restricted API categories (--http-restricted-api, --grpc-restricted-protocol) and load overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from cvcycle.serve.restricted import parse_restricted

KEY = {"admin-key": "s3cret"}
RULE = parse_restricted(["model-repository:admin-key=s3cret"], "--http-restricted-api")


def infer(c: Any, module: Any, x: np.ndarray, **kwargs: Any) -> Any:
    tensor = module.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return c.infer("affine", [tensor], **kwargs)


def test_model_repository_needs_the_key_over_http_and_grpc_while_infer_stays_open(
    serve: Any, publish: Any, affine: Any, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(control_mode="explicit", http_restricted=RULE, grpc_restricted=RULE)
    for path in (
        "/v2/repository/index",
        "/v2/repository/models/affine/load",
        "/v2/repository/models/affine/unload",
    ):
        response = httpx.post(f"http://{server.url}{path}", json={})
        assert response.status_code == 403
        assert response.json() == {"error": "This API is restricted, expecting header 'admin-key'"}
        assert (
            httpx.post(f"http://{server.url}{path}", json={}, headers={"admin-key": "wrong"}).status_code
            == 403
        )
    c = triton.InferenceServerClient(url=server.url)
    c.load_model("affine", headers=KEY)
    np.testing.assert_allclose(infer(c, triton, sample).as_numpy("y"), sample * 2)
    assert c.get_model_repository_index(headers=KEY)[0]["state"] == "READY"

    g = triton_grpc.InferenceServerClient(url=server.grpc_url)
    for call in (lambda: g.unload_model("affine"), lambda: g.get_model_repository_index()):
        with pytest.raises(InferenceServerException) as info:
            call()
        assert info.value.status() == str(grpc.StatusCode.PERMISSION_DENIED)
        assert "expecting header 'admin-key'" in str(info.value.message())
    np.testing.assert_allclose(infer(g, triton_grpc, sample).as_numpy("y"), sample * 2)
    assert g.is_server_live() and g.get_server_metadata()
    g.unload_model("affine", headers=KEY)
    assert not c.is_model_ready("affine")


def test_restricted_inference_needs_the_key(
    serve: Any, publish: Any, affine: Any, sample: np.ndarray
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    rule = parse_restricted(["inference,model-repository:infer-key=k"], "--http-restricted-api")
    server = serve(http_restricted=rule, grpc_restricted=rule)
    c = triton.InferenceServerClient(url=server.url)
    with pytest.raises(InferenceServerException, match="expecting header 'infer-key'"):
        infer(c, triton, sample)
    np.testing.assert_allclose(infer(c, triton, sample, headers={"infer-key": "k"}).as_numpy("y"), sample * 2)
    g = triton_grpc.InferenceServerClient(url=server.grpc_url)
    with pytest.raises(InferenceServerException, match="expecting header 'infer-key'"):
        infer(g, triton_grpc, sample)
    np.testing.assert_allclose(
        infer(g, triton_grpc, sample, headers={"infer-key": "k"}).as_numpy("y"), sample * 2
    )
    assert c.is_server_ready()  # health is not restricted


@pytest.mark.parametrize(
    "value",
    ["bogus:admin-key=x", "model-repository", "model-repository:admin-key=", "model-repository,nope:h=v"],
)
def test_a_bad_restriction_fails_at_start_with_one_line(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cvcycle.serve", "--repo", str(tmp_path), "--http-restricted-api", value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --http-restricted-api")


@pytest.mark.parametrize("name", ["../x.onnx", "/etc/passwd", "sub/model.onnx", "..", "a\\\\b.onnx"])
def test_a_load_override_cannot_name_a_file_outside_the_version_folder(
    serve: Any, publish: Any, affine: Any, repo: Path, name: str
) -> None:
    publish("affine", 1, affine(2.0, 0.0))
    server = serve(control_mode="explicit")
    c = triton.InferenceServerClient(url=server.url)
    messages = []
    for field in ("default_model_filename", "cc_model_filenames"):
        for candidate in (name, name.replace("x.onnx", "missing.onnx").replace("passwd", "no-such-file")):
            value: Any = candidate if field == "default_model_filename" else {"8.6": candidate}
            config = json.dumps({"name": "affine", "platform": "onnxruntime_onnx", field: value})
            response = httpx.post(
                f"http://{server.url}/v2/repository/models/affine/load",
                json={"parameters": {"config": config}},
            )
            assert response.status_code == 400
            messages.append(response.json()["error"])
            assert field in messages[-1] and "plain file name" in messages[-1]
    assert messages[0] == messages[1] and messages[2] == messages[3]
    with pytest.raises(InferenceServerException, match="plain file name"):
        c.load_model("affine", config=json.dumps({"default_model_filename": name}))
    assert not c.is_model_ready("affine")
