"""``OnnxPredictor`` gives the detections PyTorch gives, through the same pre- and post-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from cvcycle.errors import InvalidInput
from cvcycle.export.onnx import export_onnx
from cvcycle.export.onnx_predictor import OnnxPredictor
from cvcycle.models.predictor import Predictor, prepare_batch, to_detections

CLASSES = ("person", "fallen_person")
DYNAMIC = {name: {0: "batch"} for name in ["images", "boxes", "scores", "classes"]}


def test_predictions_match_pytorch(detector: nn.Module, tmp_path: Path) -> None:
    data = export_onnx(
        detector, (torch.rand(1, 3, 64, 64),), ["images"], ["boxes", "scores", "classes"], DYNAMIC
    )
    (tmp_path / "model.onnx").write_bytes(data)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 80, 3), dtype=np.uint8) for _ in range(3)]

    batch, scales = prepare_batch(images, (64, 64))
    with torch.inference_mode():
        boxes, scores, classes = (t.numpy() for t in detector(torch.from_numpy(batch)))
    expected = to_detections(boxes, scores, classes, scales, CLASSES, threshold=0.1)

    for source in (data, tmp_path / "model.onnx", str(tmp_path / "model.onnx")):
        predictor = OnnxPredictor(source, CLASSES, (64, 64))
        assert isinstance(predictor, Predictor)
        got = predictor.predict(images, threshold=0.1)
        assert len(got) == 3
        for want, have in zip(expected, got, strict=True):
            assert have.class_names == CLASSES
            order_w, order_h = (
                np.argsort(-want.scores, kind="stable"),
                np.argsort(-have.scores, kind="stable"),
            )
            np.testing.assert_allclose(have.scores[order_h], want.scores[order_w], rtol=1e-3, atol=1e-5)
            np.testing.assert_allclose(have.xyxy[order_h], want.xyxy[order_w], rtol=1e-3, atol=1e-3)
            assert (have.xyxy[:, 2] <= 80 + 1e-3).all()  # back in image pixels (80 wide), not input pixels
    assert OnnxPredictor(data, CLASSES, (64, 64)).predict([]) == []


def test_a_graph_off_the_detector_contract_is_refused() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["features"])],
        "features",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, 8, 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["b", 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(InvalidInput, match="does not follow the detector contract"):
        OnnxPredictor(model.SerializeToString(), CLASSES, (8, 8))
