"""Opening a version's model file for a platform: ONNX Runtime sessions and TensorRT plans.

``open_instances`` is the one door: it returns one ``ModelInstance`` per instance of the
config's ``instance_group`` count, or raises ``LoadFailure`` with the reason.

TensorRT plans are tied to the GPU they were built for, so a ``tensorrt_plan`` model is looked up
in ``cc_model_filenames`` by the compute capability of the GPU this box has, with no silent
fallback to another GPU's plan: with no GPU, no matching plan or no TensorRT runtime, the load
fails and says which (e.g. "no GPU present; cc_model_filenames has 8.6, 8.9").

Threads: each ONNX Runtime session gets ``intra_op_thread_count`` intra-op threads when the
config's ``parameters`` set it (Triton's onnxruntime backend parameter), else the server's
``--session-threads``, else the box's CPUs divided among the version's instances, so that
``instance_group [ { count: 2 } ]`` on two cores runs two one-thread sessions side by side instead
of two sessions of two threads fighting over the cores. ``inter_op_thread_count`` and
``execution_mode`` (0 sequential, 1 parallel) are honoured as Triton's backend honours them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state  # type: ignore[import-untyped]

from cvcycle.serve.model_config import (
    ONNX_BACKEND,
    ONNX_PLATFORM,
    TENSORRT_BACKEND,
    TENSORRT_PLATFORM,
    ServedConfig,
)
from cvcycle.serve.protocol import ORT_DATATYPES

#: What ONNX Runtime raises: its pybind exceptions share no base class but Exception.
ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.NoSuchFile,
    ort_state.NoModel,
    ort_state.EngineError,
    ort_state.RuntimeException,
    ort_state.InvalidProtobuf,
    ort_state.NotImplemented,
    ort_state.InvalidGraph,
    ort_state.EPFail,
    RuntimeError,
    ValueError,
)


class LoadFailure(Exception):
    """A version could not be loaded; the message says why."""


@dataclass(frozen=True)
class GraphTensor:
    """A tensor as the model file has it: protocol datatype and shape (-1 where dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


#: Triton's onnxruntime backend parameters for threads, read from config.pbtxt ``parameters``.
INTRA_OP_THREADS = "intra_op_thread_count"
INTER_OP_THREADS = "inter_op_thread_count"
EXECUTION_MODE = "execution_mode"


@dataclass(frozen=True)
class SessionThreads:
    """The threads of each ONNX Runtime session of a version (0: ONNX Runtime's default)."""

    intra_op: int
    inter_op: int = 0
    parallel: bool = False  # execution_mode 1: independent nodes run at once on the inter-op threads


def _count(config: ServedConfig, key: str, allowed: str, most: int | None = None) -> int | None:
    """A parameter's whole number, None when unset; LoadFailure saying what it must be otherwise."""
    text = config.parameters.get(key, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or (most is not None and int(text) > most):
        raise LoadFailure(f"config.pbtxt parameter {key!r} must be {allowed}, got {config.parameters[key]!r}")
    return int(text)


def session_threads(config: ServedConfig, server_threads: int = 0, cpus: int | None = None) -> SessionThreads:
    """The threads each instance of ``config`` runs with; LoadFailure naming a parameter that is no count.

    Intra-op threads: the config's ``intra_op_thread_count`` when above 0, else ``server_threads``
    (``--session-threads``) when above 0, else the CPUs (``cpus``, this box's by default) shared
    among the instances, at least one each.
    """
    intra = _count(config, INTRA_OP_THREADS, "a whole number of threads (0: the server chooses)")
    if not intra:
        intra = server_threads
    if intra <= 0:
        intra = max(1, (cpus or os.cpu_count() or 1) // max(1, config.instance_count))
    inter = _count(config, INTER_OP_THREADS, "a whole number of threads (0: ONNX Runtime's default)")
    mode = _count(config, EXECUTION_MODE, "0 (sequential) or 1 (parallel)", most=1)
    return SessionThreads(intra, inter or 0, mode == 1)


class ModelInstance:
    """One ONNX Runtime session: a model instance that runs feeds and returns every output."""

    def __init__(self, path: Path, threads: SessionThreads) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads.intra_op
        options.inter_op_num_threads = threads.inter_op
        if threads.parallel:
            options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        # Idle intra-op threads would spin for work and take the cores the protocol threads need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except ORT_ERRORS as exc:
            raise LoadFailure(f"{path}: {str(exc).strip()}") from exc
        self.inputs = tuple(_graph_tensor(node) for node in self.session.get_inputs())
        self.outputs = tuple(_graph_tensor(node) for node in self.session.get_outputs())
        self._output_names = [t.name for t in self.outputs]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self.session.run(self._output_names, feeds), strict=True))


def _graph_tensor(node: Any) -> GraphTensor:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return GraphTensor(node.name, ORT_DATATYPES.get(node.type, node.type), shape)


def open_instances(config: ServedConfig, version_dir: Path, threads: int) -> list[ModelInstance]:
    """The model instances of one version, or LoadFailure naming what is missing or broken.

    ``threads`` is the server's ``--session-threads`` (0: choose), see ``session_threads``.
    """
    platform = config.platform or config.backend
    if platform in (TENSORRT_PLATFORM, TENSORRT_BACKEND):
        raise LoadFailure(tensorrt_unavailable(config, version_dir))
    if platform not in (ONNX_PLATFORM, ONNX_BACKEND):
        raise LoadFailure(
            f"platform {platform!r} is not served here: cvcycle serve runs {ONNX_PLATFORM} models on "
            f"ONNX Runtime and {TENSORRT_PLATFORM} plans on a GPU (serve the others with NVIDIA Triton)"
        )
    path = version_dir / config.default_model_filename
    if not path.is_file():
        raise LoadFailure(f"{path} does not exist")
    chosen = session_threads(config, threads)
    return [ModelInstance(path, chosen) for _ in range(config.instance_count)]


# -- TensorRT ---------------------------------------------------------------------------------------


def gpu_compute_capabilities() -> list[str]:
    """The compute capability ("8.6") of every NVIDIA GPU on this box, by nvidia-smi; [] when none."""
    if not Path("/proc/driver/nvidia").exists() and shutil.which("nvidia-smi") is None:
        return []
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def select_plan(config: ServedConfig, version_dir: Path, capabilities: list[str]) -> Path:
    """The plan file for the first GPU, by ``cc_model_filenames``; LoadFailure saying why there is none."""
    known = ", ".join(sorted(config.cc_model_filenames)) or "nothing"
    if not capabilities:
        raise LoadFailure(f"no GPU present to run a TensorRT plan; cc_model_filenames has {known}")
    capability = capabilities[0]
    filename = config.cc_model_filenames.get(capability)
    if filename is None:
        default = version_dir / config.default_model_filename
        if config.cc_model_filenames or not default.is_file():
            raise LoadFailure(
                f"no plan for compute capability {capability} (the GPU here); cc_model_filenames has {known}"
            )
        filename = config.default_model_filename
    path = version_dir / filename
    if not path.is_file():
        raise LoadFailure(f"the plan for compute capability {capability}, {path}, does not exist")
    return path


def tensorrt_unavailable(config: ServedConfig, version_dir: Path) -> str:
    """Why this box cannot run the version's plan: no GPU, no plan for its GPU, or no TensorRT runtime."""
    try:
        plan = select_plan(config, version_dir, gpu_compute_capabilities())
    except LoadFailure as exc:
        return str(exc)
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return f"{plan} matches this GPU but the TensorRT Python runtime (tensorrt) is not installed"
    return (
        f"{plan} matches this GPU, but cvcycle serve runs TensorRT plans through NVIDIA Triton only; "
        "serve this model with Triton on the same repository"
    )
