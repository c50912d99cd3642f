"""Triton model configuration: ``config.pbtxt`` text from an ONNX graph's inputs and outputs.

Generated configs parse as Triton's ``ModelConfig`` protobuf (``inference.ModelConfig`` in
model_config.proto) and run unchanged on NVIDIA Triton and on ``cvcycle serve``. Tensor specs
carry full shapes, batch axis included, with -1 for a dynamic dimension; when
``max_batch_size > 0`` the config's ``dims`` leave the batch axis out, as Triton expects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from google.protobuf.text_encoding import CEscape  # type: ignore[import-untyped]

from cvcycle.errors import InvalidInput
from cvcycle.refs import is_valid_name

#: ONNX element type -> the datatype name of the inference protocol (KServe v2 / Triton).
ONNX_DATATYPES: dict[int, str] = {
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.UINT16: "UINT16",
    onnx.TensorProto.UINT32: "UINT32",
    onnx.TensorProto.UINT64: "UINT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.INT16: "INT16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.STRING: "BYTES",
    onnx.TensorProto.BFLOAT16: "BF16",
}

#: Protocol datatype -> ``DataType`` enum name in model_config.proto (BYTES is TYPE_STRING there).
CONFIG_DATATYPES = {dt: "TYPE_STRING" if dt == "BYTES" else f"TYPE_{dt}" for dt in ONNX_DATATYPES.values()}

_COMPUTE_CAPABILITY = re.compile(r"^[0-9]+\.[0-9]+$")

TENSORRT_PLATFORM = "tensorrt_plan"
#: The file name Triton falls back to when no ``cc_model_filenames`` entry matches the GPU.
TENSORRT_DEFAULT_FILENAME = "model.plan"


def check_compute_capability(capability: str) -> str:
    """``capability`` if it is a GPU compute capability written as "8.6"; InvalidInput otherwise."""
    if not _COMPUTE_CAPABILITY.match(capability):
        raise InvalidInput(f"{capability!r} is not a compute capability", hint='write it as "8.6"')
    return capability


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, protocol datatype (``FP32``) and full shape (-1 dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class VersionPolicy:
    """Which version folders a server serves: the latest N, all, or specific numbers."""

    kind: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def latest(cls, num_versions: int = 1) -> VersionPolicy:
        return cls("latest", num_versions=num_versions)

    @classmethod
    def all(cls) -> VersionPolicy:
        return cls("all")

    @classmethod
    def specific(cls, *versions: int) -> VersionPolicy:
        return cls("specific", versions=tuple(versions))

    def to_pbtxt(self) -> str:
        if self.kind == "latest":
            if self.num_versions < 1:
                raise InvalidInput(f"version policy latest needs num_versions >= 1, got {self.num_versions}")
            return f"version_policy: {{ latest {{ num_versions: {self.num_versions} }} }}"
        if self.kind == "all":
            return "version_policy: { all { } }"
        if self.kind == "specific":
            if not self.versions:
                raise InvalidInput("version policy specific needs at least one version")
            return f"version_policy: {{ specific {{ versions: {_list(self.versions)} }} }}"
        raise InvalidInput(f"unknown version policy {self.kind!r}", hint="use latest, all or specific")


@dataclass(frozen=True)
class DynamicBatching:
    """Server-side batching of concurrent requests (Triton's ``dynamic_batching``)."""

    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0

    def to_pbtxt(self) -> str:
        parts = []
        if self.preferred_batch_size:
            parts.append(f"preferred_batch_size: {_list(self.preferred_batch_size)}")
        if self.max_queue_delay_microseconds:
            parts.append(f"max_queue_delay_microseconds: {self.max_queue_delay_microseconds}")
        return "dynamic_batching { " + " ".join(parts) + (" }" if parts else "}")


@dataclass(frozen=True)
class ModelIO:
    """The inputs and outputs of a graph, in graph order."""

    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)


def io_from_onnx(onnx_bytes: bytes) -> ModelIO:
    """The graph's inputs (initializers excluded) and outputs with datatypes and shapes."""
    try:
        graph = onnx.load_from_string(onnx_bytes).graph
    except DecodeError as exc:
        raise InvalidInput(f"not an ONNX model: {exc}") from exc
    initializers = {init.name for init in graph.initializer}
    return ModelIO(
        inputs=[_spec(value) for value in graph.input if value.name not in initializers],
        outputs=[_spec(value) for value in graph.output],
    )


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    datatype = ONNX_DATATYPES.get(tensor.elem_type)
    if datatype is None:
        raise InvalidInput(
            f"tensor {value.name!r} has ONNX element type "
            f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}, which Triton cannot serve"
        )
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, datatype, shape)


def model_config(
    name: str,
    platform: str = "onnxruntime_onnx",
    *,
    max_batch_size: int,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    version_policy: VersionPolicy | None = None,
    instance_count: int = 1,
    instance_kind: str | None = None,
    dynamic_batching: DynamicBatching | None = None,
    cc_model_filenames: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> str:
    """The ``config.pbtxt`` text of a model.

    ``instance_kind`` (``KIND_CPU``, ``KIND_GPU``) is left out by default so that Triton places
    instances on whatever the box has. ``cc_model_filenames`` maps a compute capability ("8.6")
    to the TensorRT plan built for it. ``parameters`` become string ``parameters`` entries.
    """
    if not is_valid_name(name):
        raise InvalidInput(
            f"model name {name!r} cannot be a Triton model directory",
            hint="use letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    if max_batch_size < 0:
        raise InvalidInput(f"max_batch_size must be >= 0, got {max_batch_size}")
    if instance_count < 1:
        raise InvalidInput(f"instance_count must be >= 1, got {instance_count}")
    if platform == TENSORRT_PLATFORM:
        _check_plans(name, cc_model_filenames or {})
    lines = [
        f'name: "{CEscape(name, as_utf8=True)}"',
        f'platform: "{CEscape(platform, as_utf8=True)}"',
        f"max_batch_size: {max_batch_size}",
        (version_policy or VersionPolicy.latest(1)).to_pbtxt(),
        "input [",
        ",\n".join(_tensor_pbtxt(spec, max_batch_size, "input") for spec in inputs),
        "]",
        "output [",
        ",\n".join(_tensor_pbtxt(spec, max_batch_size, "output") for spec in outputs),
        "]",
        "instance_group [ { "
        + (f"kind: {instance_kind} " if instance_kind else "")
        + f"count: {instance_count} }} ]",
    ]
    if dynamic_batching is not None:
        lines.append(dynamic_batching.to_pbtxt())
    for capability, filename in sorted((cc_model_filenames or {}).items()):
        lines.append(
            f'cc_model_filenames {{ key: "{CEscape(capability, as_utf8=True)}" '
            f'value: "{CEscape(filename, as_utf8=True)}" }}'
        )
    for key, value in sorted((parameters or {}).items()):
        lines.append(
            f'parameters {{ key: "{CEscape(key, as_utf8=True)}" '
            f'value: {{ string_value: "{CEscape(value, as_utf8=True)}" }} }}'
        )
    return "\n".join(lines) + "\n"


def _check_plans(name: str, cc_model_filenames: Mapping[str, str]) -> None:
    """A plan runs only on the GPU it was built for: every plan is named by its compute capability.

    There is no default plan (no ``model.plan``), so that a GPU with no plan of its own fails to
    load with that reason instead of running an engine built for another GPU.
    """
    if not cc_model_filenames:
        raise InvalidInput(
            f"TensorRT model {name!r} needs cc_model_filenames: a plan runs only on the GPU it was built for",
            hint='name each plan by compute capability, e.g. {"8.6": "model_8.6.plan"}',
        )
    for capability, filename in cc_model_filenames.items():
        if not _COMPUTE_CAPABILITY.match(capability):
            raise InvalidInput(f"cc_model_filenames key {capability!r} is not a compute capability like 8.6")
        if not filename or "/" in filename or filename == TENSORRT_DEFAULT_FILENAME:
            raise InvalidInput(
                f"cc_model_filenames maps {capability} to {filename!r}; name a plan file of the version "
                f"folder other than {TENSORRT_DEFAULT_FILENAME}, which Triton would run on any GPU"
            )


def _tensor_pbtxt(spec: TensorSpec, max_batch_size: int, role: str) -> str:
    datatype = CONFIG_DATATYPES.get(spec.datatype)
    if datatype is None:
        raise InvalidInput(f"{role} {spec.name!r} has unknown datatype {spec.datatype!r}")
    dims = list(spec.shape)
    if max_batch_size > 0:
        if not dims or dims[0] not in (-1, 0):
            raise InvalidInput(
                f"{role} {spec.name!r} has shape {list(spec.shape)}: no dynamic batch axis first",
                hint="export with a dynamic batch axis, or publish with max_batch_size 0",
            )
        dims = dims[1:]
    lines = [
        "  {",
        f'    name: "{CEscape(spec.name, as_utf8=True)}"',
        f"    data_type: {datatype}",
    ]
    if dims:
        lines.append(f"    dims: {_list(dims)}")
    else:
        # A tensor that is only the batch axis: Triton wants one dimension reshaped away.
        lines += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
    lines.append("  }")
    return "\n".join(lines)


def _list(values: Sequence[int]) -> str:
    return "[ " + ", ".join(str(int(v)) for v in values) + " ]"
