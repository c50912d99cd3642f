"""TensorRT plans: picked by the GPU's compute capability, never another GPU's; on a box without one,
the load fails with that reason in the index, the load answer and every inference error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from cvcycle.registry.layout import plan_filenames
from cvcycle.registry.publish import write_repository_version
from cvcycle.registry.triton import TENSORRT_PLATFORM, io_from_onnx, model_config
from cvcycle.serve.model_config import parse_model_config
from cvcycle.serve.runtimes import LoadFailure, gpu_compute_capabilities, select_plan

pytestmark = pytest.mark.skipif(bool(gpu_compute_capabilities()), reason="this box has an NVIDIA GPU")


def publish_plans(repo: Path, onnx_bytes: bytes) -> Path:
    """A TensorRT layout: config.pbtxt naming a plan per compute capability, the plans, no model.plan."""
    io = io_from_onnx(onnx_bytes)
    text = model_config(
        "detector",
        TENSORRT_PLATFORM,
        max_batch_size=8,
        inputs=io.inputs,
        outputs=io.outputs,
        cc_model_filenames=plan_filenames(["8.6", "8.9"]),
    )
    write_repository_version(repo, "detector", 1, onnx_bytes, text)
    version_dir = repo / "detector" / "1"
    (version_dir / "model.onnx").unlink()
    for capability in ("8.6", "8.9"):
        (version_dir / f"model_{capability}.plan").write_bytes(b"an engine built for one GPU")
    return version_dir


def test_a_plan_is_chosen_by_compute_capability_only(repo: Path, affine: Callable[..., bytes]) -> None:
    version_dir = publish_plans(repo, affine(1.0, 0.0))
    config = parse_model_config((repo / "detector" / "config.pbtxt").read_text())
    assert select_plan(config, version_dir, ["8.9"]) == version_dir / "model_8.9.plan"
    with pytest.raises(LoadFailure, match=r"no plan for compute capability 7\.5 \(the GPU here\); "):
        select_plan(config, version_dir, ["7.5"])
    with pytest.raises(
        LoadFailure, match=r"no GPU present to run a TensorRT plan; cc_model_filenames has 8\.6, 8\.9"
    ):
        select_plan(config, version_dir, [])


def test_without_a_gpu_the_load_fails_with_the_reason(
    serve: Any, repo: Path, affine: Callable[..., bytes], sample: np.ndarray
) -> None:
    publish_plans(repo, affine(1.0, 0.0))
    reason = "no GPU present to run a TensorRT plan; cc_model_filenames has 8.6, 8.9"
    server = serve(control_mode="explicit")
    http = triton.InferenceServerClient(url=server.url)
    grpc = triton_grpc.InferenceServerClient(url=server.grpc_url)
    for c in (http, grpc):
        with pytest.raises(InferenceServerException) as info:
            c.load_model("detector")
        assert reason in str(info.value.message())
    (row,) = http.get_model_repository_index()
    assert row["version"] == "1" and row["state"] == "UNAVAILABLE" and reason in row["reason"]
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(sample)
    with pytest.raises(InferenceServerException) as info:
        http.infer("detector", [tensor])
    assert "model 'detector' is not ready" in str(info.value.message())
    assert reason in str(info.value.message())
