"""The one COCO bridge: training's validation metric and evaluation's map50 agree on the same boxes."""

from __future__ import annotations

import numpy as np
import pytest

from cvcycle.boxes import Box
from cvcycle.evaluate.metrics import FrameTruth, compute_metrics
from cvcycle.models.coco_eval import GroundTruth, coco_map
from cvcycle.models.detections import Detections

CLASSES = ("person", "fallen_person", "dog")


def _world(seed: int, truth_classes: int) -> tuple[list[GroundTruth], list[FrameTruth], list[Detections]]:
    """Twelve frames of random truth boxes and detections: some near a truth box, many anywhere,
    up to 150 a frame (past COCO's budget of 100), in every class; some frames show nothing."""
    rng = np.random.default_rng(seed)
    train_truth, eval_truth, found = [], [], []
    for index in range(12):
        n = int(rng.integers(0, 5))
        xy, wh = rng.uniform(0, 200, (n, 2)), rng.uniform(2, 120, (n, 2))
        cls = rng.integers(0, truth_classes, n)
        train_truth.append(GroundTruth(320, 240, np.concatenate([xy, xy + wh], 1), cls))
        boxes = tuple(Box(CLASSES[c], *map(float, xy[j]), *map(float, wh[j])) for j, c in enumerate(cls))
        eval_truth.append(FrameTruth(1, index, 320, 240, boxes))
        m = int(rng.integers(0, 150))
        dxy, dwh = rng.uniform(0, 200, (m, 2)), rng.uniform(2, 120, (m, 2))
        near = min(n, m)
        dxy[:near] = xy[:near] + rng.normal(0, 4, (near, 2))
        dwh[:near] = np.abs(wh[:near] + rng.normal(0, 4, (near, 2))) + 1
        xyxy = np.concatenate([dxy, dxy + dwh], 1)
        found.append(Detections(xyxy, rng.uniform(0, 1, m), rng.integers(0, 3, m), CLASSES))
    return train_truth, eval_truth, found


@pytest.mark.parametrize(("seed", "truth_classes"), [(1, 3), (2, 2), (3, 1), (4, 3)])
def test_training_validation_and_evaluation_give_the_same_map(seed: int, truth_classes: int) -> None:
    train_truth, eval_truth, found = _world(seed, truth_classes)
    training = coco_map(train_truth, found, CLASSES)
    evaluation = compute_metrics(eval_truth, found)
    assert evaluation.map50 is not None and evaluation.map is not None
    assert training["map50"] > 0
    # Equal up to the order in which the per-class means are summed.
    assert training["map50"] == pytest.approx(evaluation.map50, abs=1e-12)
    assert training["map"] == pytest.approx(evaluation.map, abs=1e-12)


def test_no_truth_is_undefined_for_evaluation_and_zero_for_picking_an_epoch() -> None:
    found = [Detections(np.array([[1.0, 1.0, 9.0, 9.0]]), np.array([0.9]), [0], CLASSES)]
    assert coco_map([GroundTruth(32, 32, np.zeros((0, 4)), np.zeros(0, np.int64))], found, CLASSES) == {
        "map50": 0.0,
        "map": 0.0,
    }
    assert compute_metrics([FrameTruth(1, 0, 32, 32)], found).map50 is None
