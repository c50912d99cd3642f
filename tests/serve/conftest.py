"""Small ONNX graphs built by hand, a repository to publish them into, and a live server on a free port.

The server runs in background threads of the test process (HTTP, gRPC and metrics on free ports of
127.0.0.1) and is talked to with the official ``tritonclient`` clients, HTTP and gRPC.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from cvcycle.registry.publish import write_repository_version
from cvcycle.registry.triton import DynamicBatching, VersionPolicy, io_from_onnx, model_config
from cvcycle.serve import InferenceServer, ServerOptions


def affine_model(scale: float, shift: float) -> bytes:
    """x FP32 (B, 4) -> y = x * scale + shift (B, 4), total = sum(y, axis 1) (B,)."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "scale"], ["scaled"]),
            helper.make_node("Add", ["scaled", "shift"], ["y"]),
            helper.make_node("ReduceSum", ["y", "axes"], ["total"], keepdims=0),
        ],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=[
            helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
            helper.make_tensor("shift", TensorProto.FLOAT, [], [shift]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def mean_detector(size: tuple[int, int], scale: float) -> bytes:
    """The detector contract at its simplest: one box per image, scored by the mean pixel.

    images (B, 3, H, W) -> boxes (B, 1, 4) = [0, 0, W * scale * m, H * scale * m], scores (B, 1) = m,
    classes (B, 1) = 1 if m > 0.5 else 0, m the image's mean value.
    """
    height, width = size
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "axis1"], ["scores"]),
            helper.make_node("Unsqueeze", ["scores", "axis2"], ["scores3"]),
            helper.make_node("Mul", ["scores3", "corners"], ["boxes"]),
            helper.make_node("Greater", ["scores", "half"], ["bright"]),
            helper.make_node("Cast", ["bright"], ["classes"], to=TensorProto.INT64),
        ],
        "mean_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, height, width])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 1, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, ["batch", 1]),
        ],
        initializer=[
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
            helper.make_tensor("corners", TensorProto.FLOAT, [4], [0, 0, width * scale, height * scale]),
            helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


TYPES = {
    "fp32": TensorProto.FLOAT,
    "fp16": TensorProto.FLOAT16,
    "int64": TensorProto.INT64,
    "int32": TensorProto.INT32,
    "uint8": TensorProto.UINT8,
    "bool": TensorProto.BOOL,
    "bytes": TensorProto.STRING,
}


def identity_model() -> bytes:
    """One (B, 3) input per datatype, each returned as is: in_<type> -> out_<type>."""
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"in_{t}"], [f"out_{t}"]) for t in TYPES],
        "identities",
        [helper.make_tensor_value_info(f"in_{t}", code, ["batch", 3]) for t, code in TYPES.items()],
        [helper.make_tensor_value_info(f"out_{t}", code, ["batch", 3]) for t, code in TYPES.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


Publish = Callable[..., None]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def publish(repo: Path) -> Publish:
    def publish(
        name: str,
        version: int,
        data: bytes,
        max_batch_size: int = 8,
        num_versions: int = 1,
        parameters: dict[str, str] | None = None,
        policy: VersionPolicy | None = None,
        dynamic_batching: DynamicBatching | None = None,
        instance_count: int = 1,
    ) -> None:
        io = io_from_onnx(data)
        text = model_config(
            name,
            max_batch_size=max_batch_size,
            inputs=io.inputs,
            outputs=io.outputs,
            version_policy=policy or VersionPolicy.latest(num_versions),
            parameters=parameters,
            dynamic_batching=dynamic_batching,
            instance_count=instance_count,
        )
        write_repository_version(repo, name, version, data, text)

    return publish


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``cvcycle serve`` in this process: HTTP, gRPC and metrics on free ports of 127.0.0.1."""

    def __init__(
        self, repo: Path, poll_interval: float, control_mode: str, load_models: list[str], **options: Any
    ) -> None:
        self.options = ServerOptions(
            repo=repo,
            http_port=free_port(),
            grpc_port=free_port(),
            metrics_port=free_port(),
            control_mode=control_mode,
            load_models=load_models,
            poll_interval=poll_interval,
            **options,
        )
        self.server = InferenceServer(self.options)
        self.app = self.server.app
        self.repository = self.server.repository

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.options.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.options.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.options.metrics_port}/metrics"

    def __enter__(self) -> Server:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@pytest.fixture
def serve(repo: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(
        poll_interval: float = 0.05,
        control_mode: str = "poll",
        load_models: list[str] | None = None,
        **options: Any,
    ) -> Server:
        server = Server(repo, poll_interval, control_mode, load_models or [], **options)
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def affine() -> Callable[[float, float], bytes]:
    return affine_model


@pytest.fixture
def detector() -> Callable[[tuple[int, int], float], bytes]:
    return mean_detector


@pytest.fixture
def identities() -> bytes:
    return identity_model()


@pytest.fixture
def sample() -> np.ndarray:
    return np.arange(8, dtype=np.float32).reshape(2, 4)


@pytest.fixture
def assert_input_errors(sample: np.ndarray) -> Callable[[Any, ModuleType], None]:
    """Checks that the served ``affine`` model refuses a wrong input name, shape and datatype,
    naming what it expected and what came; with ``tritonclient.http`` or ``tritonclient.grpc``."""

    def message_of(c: Any, tensor: Any) -> str:
        with pytest.raises(InferenceServerException) as info:
            c.infer("affine", [tensor])
        return str(info.value.message())

    def check(c: Any, triton: ModuleType) -> None:
        wrong_name = triton.InferInput("images", [2, 4], "FP32")
        wrong_name.set_data_from_numpy(sample)
        assert "has no input 'images'; its inputs are x" in message_of(c, wrong_name)

        wrong_shape = triton.InferInput("x", [2, 5], "FP32")
        wrong_shape.set_data_from_numpy(np.zeros((2, 5), np.float32))
        message = message_of(c, wrong_shape)
        assert "input 'x'" in message and "expected shape [-1, 4]" in message and "got [2, 5]" in message

        wrong_type = triton.InferInput("x", [2, 4], "FP64")
        wrong_type.set_data_from_numpy(sample.astype(np.float64))
        assert "expected datatype FP32, got FP64" in message_of(c, wrong_type)

    return check
