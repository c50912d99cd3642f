"""ONNX export and verification: parity on a contract-following detector, and failures named."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from cvcycle.errors import InvalidInput
from cvcycle.export.onnx import export_onnx, verify_onnx
from cvcycle.records import to_jsonable

NAMES = (["images"], ["boxes", "scores", "classes"])
DYNAMIC = {name: {0: "batch"} for name in ["images", "boxes", "scores", "classes"]}


def export(module: nn.Module, **kwargs: object) -> bytes:
    return export_onnx(module, (torch.rand(2, 3, 64, 64),), NAMES[0], NAMES[1], DYNAMIC, **kwargs)  # type: ignore[arg-type]


def test_export_has_a_dynamic_batch_axis_and_the_contract_outputs(detector: nn.Module) -> None:
    model = onnx.load_from_string(export(detector))
    assert model.opset_import[0].version == 17
    dims = {
        value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*model.graph.input, *model.graph.output]
    }
    assert dims["images"] == ["batch", 3, 64, 64]
    assert dims["boxes"][0] == dims["scores"][0] == dims["classes"][0] == "batch"
    assert dims["boxes"][2] == 4
    classes = next(o for o in model.graph.output if o.name == "classes")
    assert classes.type.tensor_type.elem_type == onnx.TensorProto.INT64


def test_verification_passes_on_every_batch_size(
    detector: nn.Module, images_batches: list[tuple[torch.Tensor]]
) -> None:
    report = verify_onnx(detector, export(detector), images_batches)
    assert report.passed, report.failures()
    assert report.alignment == "detections"
    assert report.batches == 3 and report.samples == 8
    by_name = {o.name: o for o in report.outputs}
    assert set(by_name) == {"boxes", "scores", "classes"}
    assert by_name["boxes"].torch_shape == [1, 20, 4] and by_name["boxes"].elements > 0
    assert by_name["scores"].max_abs <= 1e-5 + 1e-3
    assert by_name["classes"].onnx_dtype == "int64" and by_name["classes"].max_abs == 0.0
    assert to_jsonable(report)["outputs"][0]["name"] == "boxes"


def test_weights_changed_after_export_fail_verification_naming_the_outputs(
    detector: nn.Module, images_batches: list[tuple[torch.Tensor]]
) -> None:
    data = export(detector)
    with torch.no_grad():
        detector.head.bias[4:] += 0.5  # type: ignore[index, operator]  # class logits only
    report = verify_onnx(detector, data, images_batches)
    assert not report.passed
    by_name = {o.name: o for o in report.outputs}
    assert not by_name["scores"].passed and by_name["scores"].mismatched > 0
    assert by_name["scores"].max_abs > 0.01 and by_name["scores"].p99_abs > 0
    assert any(line.startswith("scores: ") for line in report.failures())


class FixedDetections(nn.Module):
    """The same detections for every image, in the row order of its buffers."""

    def __init__(self, boxes: list[list[float]], scores: list[float], classes: list[int]) -> None:
        super().__init__()
        self.register_buffer("boxes", torch.tensor(boxes))
        self.register_buffer("scores", torch.tensor(scores))
        self.register_buffer("classes", torch.tensor(classes, dtype=torch.int64))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = images.shape[0]
        keep = images.mean() * 0  # depend on the input, so the batch axis stays dynamic
        return (
            self.boxes.expand(b, -1, -1) + keep,  # type: ignore[operator]
            self.scores.expand(b, -1) + keep,  # type: ignore[operator]
            self.classes.expand(b, -1),  # type: ignore[operator]
        )


BOXES = [[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 50, 50], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("scores", "passed", "reordered"),
    [
        # The scores of boxes 1 and 2 differ by far less than the tolerance: their order is noise.
        ([0.9, 0.5 + 1e-7, 0.5, 0.0], True, 4),
        # They differ clearly: box 2 taking box 1's place and score is a real difference.
        ([0.9, 0.6, 0.4, 0.0], False, 0),
    ],
)
def test_near_tied_detections_may_come_in_either_order(
    scores: list[float], passed: bool, reordered: int
) -> None:
    # The graph emits boxes 1 and 2 the other way round, as a top-k could after tiny differences.
    swapped = [BOXES[0], BOXES[2], BOXES[1], BOXES[3]]
    data = export(FixedDetections(swapped, scores, [0, 1, 1, 0]))
    report = verify_onnx(FixedDetections(BOXES, scores, [0, 1, 1, 0]), data, [(torch.rand(2, 3, 64, 64),)])
    assert report.passed is passed, report.failures()
    assert report.reordered_rows == reordered  # two rows in each of two images
    if not passed:
        assert [line.split(":")[0] for line in report.failures()] == ["boxes"]


A, P, E, C, L = [0, 0, 10, 10], [20, 20, 30, 30], [20, 24, 30, 34], [40, 40, 60, 60], [5, 50, 15, 60]


@pytest.mark.parametrize(
    ("graph_rows", "passed", "ambiguous"),
    [
        # The graph keeps E, a peak tied with P, and so loses L at the cut-off: both near-ties.
        ([(A, 0.9), (E, 0.5), (P, 0.5), (C, 0.3)], True, 2),
        # The graph finds X, scored unlike anything else: a real difference.
        ([(A, 0.9), ([70, 70, 80, 80], 0.7), (P, 0.5), (C, 0.3)], False, 0),
    ],
)
def test_a_detection_only_one_runtime_keeps_passes_only_when_it_is_a_near_tie(
    graph_rows: list[tuple[list[float], float]], passed: bool, ambiguous: int
) -> None:
    graph = FixedDetections([box for box, _ in graph_rows], [score for _, score in graph_rows], [0, 0, 0, 0])
    module = FixedDetections([A, P, C, L], [0.9, 0.5, 0.3, 0.2], [0, 0, 0, 0])
    report = verify_onnx(module, export(graph), [(torch.rand(2, 3, 64, 64),)])
    assert report.passed is passed, report.failures()
    assert report.ambiguous_rows == ambiguous  # one row in each of two images
    if not passed:
        assert {line.split(":")[0] for line in report.failures()} == {"boxes", "scores"}


def test_verification_with_no_batches_does_not_pass(detector: nn.Module) -> None:
    report = verify_onnx(detector, export(detector), [])
    assert not report.passed and report.failures() == ["no batches were verified"]


def test_a_batch_with_the_wrong_number_of_inputs_is_rejected(detector: nn.Module) -> None:
    batch = (torch.rand(1, 3, 64, 64), torch.rand(1))
    with pytest.raises(InvalidInput, match="the graph takes 1"):
        verify_onnx(detector, export(detector), [batch])


def test_the_torch_export_exporter_verifies_too(
    detector: nn.Module, images_batches: list[tuple[torch.Tensor]]
) -> None:
    data = export(detector, dynamo=True)
    assert onnx.load_from_string(data).opset_import[0].version >= 18
    report = verify_onnx(detector, data, images_batches)
    assert report.passed, report.failures()


def test_numpy_batches_are_accepted(detector: nn.Module) -> None:
    batch = (np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32),)
    assert verify_onnx(detector, export(detector), [batch]).passed


def test_a_batch_onnx_runtime_refuses_fails_the_report(detector: nn.Module) -> None:
    # The graph's spatial size is fixed at 64x64; PyTorch takes 128x128 happily.
    report = verify_onnx(detector, export(detector), [(torch.rand(1, 3, 128, 128),)])
    assert not report.passed
    assert all("ONNX Runtime failed on a batch" in line for line in report.failures())
