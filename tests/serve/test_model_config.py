"""config.pbtxt as the server reads it: with tritonclient's ModelConfig and with the built-in subset."""

from __future__ import annotations

import pytest

from cvcycle.errors import InvalidInput
from cvcycle.registry.triton import DynamicBatching, TensorSpec, VersionPolicy, model_config
from cvcycle.serve.model_config import parse_model_config

CONFIG = model_config(
    "detector",
    max_batch_size=16,
    inputs=[TensorSpec("images", "FP32", (-1, 3, 64, 96))],
    outputs=[TensorSpec("boxes", "FP32", (-1, -1, 4)), TensorSpec("count", "INT64", (-1,))],
    version_policy=VersionPolicy.latest(2),
    dynamic_batching=DynamicBatching((4,), 100),
    cc_model_filenames={"8.6": "model.plan"},
    parameters={"classes": '["person"]'},
)


@pytest.mark.parametrize("prefer_tritonclient", [True, False])
def test_both_parsers_read_the_same_config(prefer_tritonclient: bool) -> None:
    config = parse_model_config(CONFIG, prefer_tritonclient=prefer_tritonclient)
    assert (config.name, config.platform, config.max_batch_size) == ("detector", "onnxruntime_onnx", 16)
    assert config.policy_text == "latest 2" and config.select_versions([1, 2, 3]) == [3, 2]
    assert [(t.name, t.datatype, t.dims) for t in config.inputs] == [("images", "FP32", (3, 64, 96))]
    assert config.outputs[1].reshape == () and config.outputs[1].dims == (1,)
    assert config.parameters == {"classes": '["person"]'}
    assert config.default_model_filename == "model.onnx"
    assert config.as_json["input"][0]["dims"] == [3, 64, 96]
    assert config.as_json["dynamic_batching"]["max_queue_delay_microseconds"] == 100


def test_the_subset_skips_fields_it_does_not_know() -> None:
    text = CONFIG + 'optimization { graph { level: 1 } }\nmodel_warmup [ { name: "w" batch_size: 1 } ]\n'
    assert parse_model_config(text, prefer_tritonclient=False).name == "detector"
    with pytest.raises(InvalidInput, match="does not parse"):
        parse_model_config("max_batch_size: many\n", prefer_tritonclient=False)


def test_policies_and_defaults() -> None:
    bare = parse_model_config('platform: "onnxruntime_onnx"\n')
    assert bare.policy_text == "latest 1" and bare.select_versions([1, 3, 2]) == [3]
    everything = parse_model_config('platform: "onnxruntime_onnx"\nversion_policy: { all { } }\n')
    assert everything.select_versions([1, 2]) == [2, 1]
    specific = parse_model_config(
        "version_policy: { specific { versions: [1, 4] } }\n", prefer_tritonclient=False
    )
    assert specific.policy_text == "specific [1, 4]" and specific.select_versions([1, 2, 3]) == [1]


def test_a_typo_is_reported_with_its_place() -> None:
    with pytest.raises(InvalidInput, match="1:1"):
        parse_model_config('nmae: "detector"\n')
