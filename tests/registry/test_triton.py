"""Generated config.pbtxt files parse as Triton's ModelConfig protobuf, with the fields Triton reads."""

from __future__ import annotations

import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from cvcycle.errors import InvalidInput
from cvcycle.registry.layout import plan_filenames
from cvcycle.registry.triton import (
    TENSORRT_PLATFORM,
    DynamicBatching,
    TensorSpec,
    VersionPolicy,
    io_from_onnx,
    model_config,
)
from cvcycle.serve.model_config import parse_model_config


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def detector_onnx() -> bytes:
    """The detector contract's signature, with the top-k axis left symbolic as TorchScript export does."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["pooled"], axes=[2, 3], keepdims=0),
            helper.make_node("Identity", ["pooled"], ["boxes_flat"]),
        ],
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 96])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", "k", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "k"]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, ["batch", "k"]),
        ],
        initializer=[helper.make_tensor("unused_weight", TensorProto.FLOAT, [1], [0.0])],
    )
    # The graph is only read for its signature here, never run.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_io_from_onnx_reads_names_datatypes_and_dynamic_dims() -> None:
    io = io_from_onnx(detector_onnx())
    assert io.inputs == [TensorSpec("images", "FP32", (-1, 3, 64, 96))]  # initializers are not inputs
    assert io.outputs == [
        TensorSpec("boxes", "FP32", (-1, -1, 4)),
        TensorSpec("scores", "FP32", (-1, -1)),
        TensorSpec("classes", "INT64", (-1, -1)),
    ]


def test_detector_config_parses_with_the_issue_layout() -> None:
    io = io_from_onnx(detector_onnx())
    text = model_config("detector", max_batch_size=16, inputs=io.inputs, outputs=io.outputs)
    config = parse(text)
    assert config.name == "detector" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 16
    assert config.version_policy.WhichOneof("policy_choice") == "latest"
    assert config.version_policy.latest.num_versions == 1
    assert "version_policy: { latest { num_versions: 1 } }" in text
    (images,) = config.input
    assert images.name == "images" and images.data_type == model_config_pb2.TYPE_FP32
    assert list(images.dims) == [3, 64, 96]  # no batch axis when max_batch_size > 0
    outputs = {o.name: (o.data_type, list(o.dims)) for o in config.output}
    assert outputs == {
        "boxes": (model_config_pb2.TYPE_FP32, [-1, 4]),
        "scores": (model_config_pb2.TYPE_FP32, [-1]),
        "classes": (model_config_pb2.TYPE_INT64, [-1]),
    }
    assert [g.count for g in config.instance_group] == [1]


def test_every_option_parses() -> None:
    text = model_config(
        "detector.trt",
        "tensorrt_plan",
        max_batch_size=8,
        inputs=[TensorSpec("images", "FP16", (-1, 3, 32, 32)), TensorSpec("mask", "BOOL", (-1, 5))],
        outputs=[TensorSpec("count", "INT32", (-1,)), TensorSpec("label", "UINT8", (-1, 2))],
        version_policy=VersionPolicy.specific(1, 3),
        instance_count=2,
        instance_kind="KIND_GPU",
        dynamic_batching=DynamicBatching((4, 8), 500),
        cc_model_filenames={"8.6": "model_8.6.plan", "7.5": "model_7.5.plan"},
        parameters={"classes": '["person", "fallen \\"person\\""]', "note": "ünïcode"},
    )
    config = parse(text)
    assert config.platform == "tensorrt_plan"
    assert list(config.version_policy.specific.versions) == [1, 3]
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.instance_group[0].count == 2
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert dict(config.cc_model_filenames) == {"8.6": "model_8.6.plan", "7.5": "model_7.5.plan"}
    assert config.parameters["classes"].string_value == '["person", "fallen \\"person\\""]'
    assert config.parameters["note"].string_value == "ünïcode"
    types = {t.name: t.data_type for t in [*config.input, *config.output]}
    assert types == {
        "images": model_config_pb2.TYPE_FP16,
        "mask": model_config_pb2.TYPE_BOOL,
        "count": model_config_pb2.TYPE_INT32,
        "label": model_config_pb2.TYPE_UINT8,
    }
    # A tensor that is only the batch axis gets one dimension, reshaped away.
    count = config.output[0]
    assert list(count.dims) == [1] and count.HasField("reshape") and list(count.reshape.shape) == []


@pytest.mark.parametrize(
    ("policy", "field", "expected"),
    [(VersionPolicy.latest(3), "latest", 3), (VersionPolicy.all(), "all", None)],
)
def test_version_policies(policy: VersionPolicy, field: str, expected: int | None) -> None:
    config = parse(model_config("m", max_batch_size=0, inputs=[], outputs=[], version_policy=policy))
    assert config.version_policy.WhichOneof("policy_choice") == field
    if expected is not None:
        assert config.version_policy.latest.num_versions == expected


def test_without_batching_the_dims_keep_every_axis() -> None:
    spec = TensorSpec("x", "FP32", (1, 3, 8, 8))
    config = parse(model_config("m", max_batch_size=0, inputs=[spec], outputs=[spec]))
    assert list(config.input[0].dims) == [1, 3, 8, 8]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad/name"}, "cannot be a Triton model directory"),
        ({"inputs": [TensorSpec("x", "FP32", (1, 4))]}, "no dynamic batch axis first"),
        ({"inputs": [TensorSpec("x", "COMPLEX", (-1, 4))]}, "unknown datatype 'COMPLEX'"),
        ({"max_batch_size": -1}, "max_batch_size must be >= 0"),
        ({"version_policy": VersionPolicy.latest(0)}, "num_versions >= 1"),
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "m", "max_batch_size": 4, "inputs": [], "outputs": [], **kwargs}
    with pytest.raises(InvalidInput, match=message):
        model_config(**args)  # type: ignore[arg-type]


def test_not_an_onnx_graph_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not an ONNX model"):
        io_from_onnx(b"\x00\x01garbage")


def test_unservable_element_types_are_named() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "complex",
        [helper.make_tensor_value_info("x", TensorProto.COMPLEX64, ["b", 2])],
        [helper.make_tensor_value_info("y", TensorProto.COMPLEX64, ["b", 2])],
    )
    data = helper.make_model(graph).SerializeToString()
    with pytest.raises(InvalidInput, match="'x' has ONNX element type COMPLEX64"):
        io_from_onnx(data)
    assert onnx.load_from_string(data).graph.name == "complex"


def test_tensorrt_plans_are_named_per_compute_capability_with_no_default() -> None:
    spec = TensorSpec("images", "FP32", (-1, 3, 8, 8))
    text = model_config(
        "detector",
        TENSORRT_PLATFORM,
        max_batch_size=4,
        inputs=[spec],
        outputs=[spec],
        cc_model_filenames=plan_filenames(["8.6", "8.9"]),
    )
    config = parse(text)
    assert dict(config.cc_model_filenames) == {"8.6": "model_8.6.plan", "8.9": "model_8.9.plan"}
    assert config.default_model_filename == ""  # and no model.plan is ever written: no fallback


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        ({}, "needs cc_model_filenames: a plan runs only on the GPU it was built for"),
        ({"sm86": "a.plan"}, "'sm86' is not a compute capability like 8.6"),
        ({"8.6": "model.plan"}, "which Triton would run on any GPU"),
        ({"8.6": "../x.plan"}, "name a plan file of the version folder"),
    ],
)
def test_tensorrt_configs_without_a_plan_per_gpu_are_refused(plans: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        model_config(
            "m", TENSORRT_PLATFORM, max_batch_size=0, inputs=[], outputs=[], cc_model_filenames=plans
        )


SPECS = [
    TensorSpec(f"t_{dt.lower()}", dt, (-1, 2, 3))
    for dt in ("FP32", "FP16", "INT64", "INT32", "UINT8", "BOOL", "BYTES")
]


@pytest.mark.parametrize("max_batch_size", [0, 1, 16])
@pytest.mark.parametrize(
    "policy",
    [VersionPolicy.latest(1), VersionPolicy.latest(2), VersionPolicy.all(), VersionPolicy.specific(2, 5)],
)
@pytest.mark.parametrize(
    "batching", [None, DynamicBatching(), DynamicBatching((4,), 100), DynamicBatching((2, 8), 0)]
)
@pytest.mark.parametrize("platform", ["onnxruntime_onnx", TENSORRT_PLATFORM])
def test_every_generated_config_parses_as_triton_and_as_served(
    max_batch_size: int, policy: VersionPolicy, batching: DynamicBatching | None, platform: str
) -> None:
    specs = [TensorSpec(s.name, s.datatype, (4, 2, 3)) for s in SPECS] if max_batch_size == 0 else SPECS
    text = model_config(
        "m",
        platform,
        max_batch_size=max_batch_size,
        inputs=specs,
        outputs=specs,
        version_policy=policy,
        instance_count=3,
        dynamic_batching=batching,
        cc_model_filenames=plan_filenames(["8.6"]) if platform == TENSORRT_PLATFORM else None,
        parameters={"classes": '["a"]'},
    )
    config = parse(text)  # Triton's own ModelConfig message
    served = parse_model_config(text)  # and what cvcycle serve reads
    assert served.max_batch_size == config.max_batch_size == max_batch_size
    assert served.policy_kind == config.version_policy.WhichOneof("policy_choice") == policy.kind
    assert served.instance_count == 3
    assert [t.datatype for t in served.inputs] == [s.datatype for s in SPECS]
    assert (served.dynamic_batching is None) == (batching is None)
    if batching is not None and served.dynamic_batching is not None:
        assert served.dynamic_batching.preferred_batch_size == batching.preferred_batch_size
        assert served.dynamic_batching.max_queue_delay_microseconds == batching.max_queue_delay_microseconds
