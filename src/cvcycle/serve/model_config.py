"""Reading a model's ``config.pbtxt`` (Triton's ``ModelConfig`` in protobuf text format).

Parsed with Triton's own message class when ``tritonclient`` is installed; otherwise with a subset
of model_config.proto built here on google.protobuf (which ONNX Runtime depends on), with the same
field names and numbers, that skips the fields a CPU ONNX Runtime server has no use for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    text_format,
)
from google.protobuf.message import Message  # type: ignore[import-untyped]

from cvcycle.errors import InvalidInput

ONNX_PLATFORM = "onnxruntime_onnx"
ONNX_BACKEND = "onnxruntime"
TENSORRT_PLATFORM = "tensorrt_plan"
TENSORRT_BACKEND = "tensorrt"

#: Triton's model file name per platform or backend when the config names none.
DEFAULT_MODEL_FILENAMES = {
    ONNX_PLATFORM: "model.onnx",
    ONNX_BACKEND: "model.onnx",
    TENSORRT_PLATFORM: "model.plan",
    TENSORRT_BACKEND: "model.plan",
}


@dataclass(frozen=True)
class ConfigTensor:
    """An input or output as the config declares it: protocol datatype and dims without the batch axis."""

    name: str
    datatype: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None
    optional: bool = False


@dataclass(frozen=True)
class BatchingPolicy:
    """Triton's ``dynamic_batching``: how long a request may wait for others, and the sizes to aim for."""

    max_queue_delay_microseconds: int = 0
    preferred_batch_size: tuple[int, ...] = ()


@dataclass(frozen=True)
class ServedConfig:
    """What the server needs of a ``config.pbtxt``, plus its JSON form for the config endpoint."""

    name: str
    platform: str
    backend: str
    max_batch_size: int
    policy_kind: str  # latest | all | specific
    policy_num_versions: int
    policy_versions: tuple[int, ...]
    inputs: tuple[ConfigTensor, ...]
    outputs: tuple[ConfigTensor, ...]
    default_model_filename: str
    parameters: dict[str, str] = field(default_factory=dict)
    as_json: dict[str, Any] = field(default_factory=dict)
    instance_count: int = 1  # model instances (sessions), summed over the instance groups
    dynamic_batching: BatchingPolicy | None = None
    cc_model_filenames: dict[str, str] = field(default_factory=dict)  # "8.6" -> plan file
    text: str = ""  # the config.pbtxt text, for the gRPC ModelConfig response

    def select_versions(self, on_disk: list[int]) -> list[int]:
        """The version numbers the policy serves out of those on disk, newest first."""
        newest_first = sorted(on_disk, reverse=True)
        if self.policy_kind == "all":
            return newest_first
        if self.policy_kind == "specific":
            return [v for v in newest_first if v in self.policy_versions]
        return newest_first[: self.policy_num_versions]

    @property
    def policy_text(self) -> str:
        if self.policy_kind == "specific":
            return f"specific {list(self.policy_versions)}"
        if self.policy_kind == "all":
            return "all"
        return f"latest {self.policy_num_versions}"


def parse_model_config(text: str, *, prefer_tritonclient: bool = True) -> ServedConfig:
    """Parse config.pbtxt text; InvalidInput with the parser's line and column when it is malformed."""
    message_class, lenient = _message_class(prefer_tritonclient)
    message = message_class()
    try:
        text_format.Parse(text, message, allow_unknown_field=lenient)
    except text_format.ParseError as exc:
        raise InvalidInput(f"config.pbtxt does not parse as a Triton ModelConfig: {exc}") from exc
    return _served_config(message, text)


def parse_model_config_json(text: str, *, prefer_tritonclient: bool = True) -> ServedConfig:
    """Parse a ModelConfig in its JSON form (the repository API's load ``config`` parameter)."""
    message_class, lenient = _message_class(prefer_tritonclient)
    message = message_class()
    try:
        json_format.Parse(text, message, ignore_unknown_fields=lenient)
    except json_format.ParseError as exc:
        raise InvalidInput(f"the config parameter does not parse as a Triton ModelConfig: {exc}") from exc
    return _served_config(message, text_format.MessageToString(message))


def _message_class(prefer_tritonclient: bool) -> tuple[type[Message], bool]:
    if prefer_tritonclient:
        triton = _tritonclient_class()
        if triton is not None:
            return triton, False
    return _subset_class(), True


@functools.cache
def _tritonclient_class() -> type[Message] | None:
    try:
        from tritonclient.grpc import model_config_pb2  # type: ignore[import-untyped]
    except ImportError:
        return None
    return model_config_pb2.ModelConfig


def _served_config(message: Any, text: str) -> ServedConfig:
    policy = message.version_policy
    which = policy.WhichOneof("policy_choice") or "latest"
    num_versions = policy.latest.num_versions if which == "latest" else 0
    return ServedConfig(
        name=message.name,
        platform=message.platform,
        backend=message.backend,
        max_batch_size=int(message.max_batch_size),
        policy_kind=which,
        # Triton's default policy (no version_policy) is the latest one version.
        policy_num_versions=num_versions or 1,
        policy_versions=tuple(int(v) for v in policy.specific.versions) if which == "specific" else (),
        inputs=tuple(_tensor(t, optional=bool(t.optional)) for t in message.input),
        outputs=tuple(_tensor(t) for t in message.output),
        default_model_filename=message.default_model_filename
        or DEFAULT_MODEL_FILENAMES.get(message.platform or message.backend, "model.onnx"),
        parameters={key: value.string_value for key, value in message.parameters.items()},
        as_json=_int64_as_numbers(json_format.MessageToDict(message, preserving_proto_field_name=True)),
        # Triton makes one instance when instance_group is absent, and count defaults to 1.
        instance_count=sum(max(int(group.count), 1) for group in message.instance_group) or 1,
        dynamic_batching=(
            BatchingPolicy(
                int(message.dynamic_batching.max_queue_delay_microseconds),
                tuple(int(size) for size in message.dynamic_batching.preferred_batch_size),
            )
            if message.HasField("dynamic_batching")
            else None
        ),
        cc_model_filenames=dict(message.cc_model_filenames),
        text=text,
    )


_INT64_FIELDS = {"dims", "shape", "versions", "max_queue_delay_microseconds"}


def _int64_as_numbers(value: Any, key: str = "") -> Any:
    """Protobuf's JSON writes int64 as strings; Triton's config endpoint writes numbers."""
    if isinstance(value, dict):
        return {k: _int64_as_numbers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_int64_as_numbers(v, key) for v in value]
    if key in _INT64_FIELDS and isinstance(value, str):
        return int(value)
    return value


def _tensor(tensor: Any, optional: bool = False) -> ConfigTensor:
    enum_name = (
        tensor.DESCRIPTOR.fields_by_name["data_type"].enum_type.values_by_number[tensor.data_type].name
    )
    datatype = "BYTES" if enum_name == "TYPE_STRING" else enum_name.removeprefix("TYPE_")
    reshape = tuple(int(d) for d in tensor.reshape.shape) if tensor.HasField("reshape") else None
    return ConfigTensor(tensor.name, datatype, tuple(int(d) for d in tensor.dims), reshape, optional)


# -- the subset of model_config.proto, for boxes without tritonclient ------------------------------

_PACKAGE = "cvcycle.serve.inference"
_F = descriptor_pb2.FieldDescriptorProto
_DATA_TYPES = [
    "TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
    "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING",
    "TYPE_BF16",
]  # fmt: skip


def _add_field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str | None = None,
) -> None:
    entry = message.field.add(name=name, number=number, type=kind)
    entry.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        entry.type_name = f".{_PACKAGE}.{type_name}"


def _add_enum(container: Any, name: str, values: list[str]) -> None:
    enum = container.enum_type.add(name=name)
    for number, value in enumerate(values):
        enum.value.add(name=value, number=number)


def _add_map(message: descriptor_pb2.DescriptorProto, name: str, number: int, entry: str, value: Any) -> None:
    nested = message.nested_type.add(name=entry)
    nested.options.map_entry = True
    _add_field(nested, "key", 1, _F.TYPE_STRING)
    if isinstance(value, str):
        _add_field(nested, "value", 2, _F.TYPE_MESSAGE, type_name=value)
    else:
        _add_field(nested, "value", 2, value)
    _add_field(message, name, number, _F.TYPE_MESSAGE, repeated=True, type_name=f"ModelConfig.{entry}")


@functools.cache
def _subset_class() -> type[Message]:
    proto = descriptor_pb2.FileDescriptorProto(
        name="cvcycle/serve/model_config_subset.proto", package=_PACKAGE, syntax="proto3"
    )
    _add_enum(proto, "DataType", _DATA_TYPES)

    reshape = proto.message_type.add(name="ModelTensorReshape")
    _add_field(reshape, "shape", 1, _F.TYPE_INT64, repeated=True)

    model_input = proto.message_type.add(name="ModelInput")
    _add_enum(model_input, "Format", ["FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"])
    _add_field(model_input, "name", 1, _F.TYPE_STRING)
    _add_field(model_input, "data_type", 2, _F.TYPE_ENUM, type_name="DataType")
    _add_field(model_input, "format", 3, _F.TYPE_ENUM, type_name="ModelInput.Format")
    _add_field(model_input, "dims", 4, _F.TYPE_INT64, repeated=True)
    _add_field(model_input, "reshape", 5, _F.TYPE_MESSAGE, type_name="ModelTensorReshape")
    _add_field(model_input, "is_shape_tensor", 6, _F.TYPE_BOOL)
    _add_field(model_input, "allow_ragged_batch", 7, _F.TYPE_BOOL)
    _add_field(model_input, "optional", 8, _F.TYPE_BOOL)

    model_output = proto.message_type.add(name="ModelOutput")
    _add_field(model_output, "name", 1, _F.TYPE_STRING)
    _add_field(model_output, "data_type", 2, _F.TYPE_ENUM, type_name="DataType")
    _add_field(model_output, "dims", 3, _F.TYPE_INT64, repeated=True)
    _add_field(model_output, "label_filename", 4, _F.TYPE_STRING)
    _add_field(model_output, "reshape", 5, _F.TYPE_MESSAGE, type_name="ModelTensorReshape")
    _add_field(model_output, "is_shape_tensor", 6, _F.TYPE_BOOL)

    policy = proto.message_type.add(name="ModelVersionPolicy")
    latest = policy.nested_type.add(name="Latest")
    _add_field(latest, "num_versions", 1, _F.TYPE_UINT32)
    policy.nested_type.add(name="All")
    specific = policy.nested_type.add(name="Specific")
    _add_field(specific, "versions", 1, _F.TYPE_INT64, repeated=True)
    policy.oneof_decl.add(name="policy_choice")
    for number, (name, type_name) in enumerate(
        [("latest", "Latest"), ("all", "All"), ("specific", "Specific")], start=1
    ):
        _add_field(policy, name, number, _F.TYPE_MESSAGE, type_name=f"ModelVersionPolicy.{type_name}")
        policy.field[-1].oneof_index = 0

    group = proto.message_type.add(name="ModelInstanceGroup")
    _add_enum(group, "Kind", ["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"])
    _add_field(group, "name", 1, _F.TYPE_STRING)
    _add_field(group, "count", 2, _F.TYPE_INT32)
    _add_field(group, "gpus", 3, _F.TYPE_INT32, repeated=True)
    _add_field(group, "kind", 4, _F.TYPE_ENUM, type_name="ModelInstanceGroup.Kind")

    batching = proto.message_type.add(name="ModelDynamicBatching")
    _add_field(batching, "preferred_batch_size", 1, _F.TYPE_INT32, repeated=True)
    _add_field(batching, "max_queue_delay_microseconds", 2, _F.TYPE_UINT64)
    _add_field(batching, "preserve_ordering", 3, _F.TYPE_BOOL)

    parameter = proto.message_type.add(name="ModelParameter")
    _add_field(parameter, "string_value", 1, _F.TYPE_STRING)

    # Fields the server does not read, declared as empty messages so that their contents, list
    # syntax included (which protobuf cannot skip as unknown fields), are skipped inside them.
    proto.message_type.add(name="Opaque")

    config = proto.message_type.add(name="ModelConfig")
    for opaque_name, number, repeated in [
        ("metric_tags", 10, True), ("optimization", 12, False), ("sequence_batching", 13, False),
        ("ensemble_scheduling", 15, False), ("model_warmup", 16, True), ("model_operations", 18, False),
        ("model_transaction_policy", 19, False), ("batch_input", 20, True), ("batch_output", 21, True),
        ("model_repository_agents", 23, False), ("response_cache", 24, False), ("model_metrics", 26, False),
    ]:  # fmt: skip
        _add_field(config, opaque_name, number, _F.TYPE_MESSAGE, repeated=repeated, type_name="Opaque")
    _add_field(config, "name", 1, _F.TYPE_STRING)
    _add_field(config, "platform", 2, _F.TYPE_STRING)
    _add_field(config, "version_policy", 3, _F.TYPE_MESSAGE, type_name="ModelVersionPolicy")
    _add_field(config, "max_batch_size", 4, _F.TYPE_INT32)
    _add_field(config, "input", 5, _F.TYPE_MESSAGE, repeated=True, type_name="ModelInput")
    _add_field(config, "output", 6, _F.TYPE_MESSAGE, repeated=True, type_name="ModelOutput")
    _add_field(config, "instance_group", 7, _F.TYPE_MESSAGE, repeated=True, type_name="ModelInstanceGroup")
    _add_field(config, "default_model_filename", 8, _F.TYPE_STRING)
    _add_map(config, "cc_model_filenames", 9, "CcModelFilenamesEntry", _F.TYPE_STRING)
    _add_field(config, "dynamic_batching", 11, _F.TYPE_MESSAGE, type_name="ModelDynamicBatching")
    _add_map(config, "parameters", 14, "ParametersEntry", "ModelParameter")
    _add_field(config, "backend", 17, _F.TYPE_STRING)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ModelConfig"))
