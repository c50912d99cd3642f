"""Metrics on hand-computable cases: COCO AP via faster-coco-eval, counts at the threshold, FP/1k, falls."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvcycle.boxes import Box
from cvcycle.evaluate.metrics import (
    FallEvent,
    FrameTruth,
    compute_metrics,
    match_detections,
)
from cvcycle.models.detections import Detections

CLASSES = ("person", "fallen_person")


def frame(media: int, index: int, *boxes: Box) -> FrameTruth:
    return FrameTruth(media, index, 320, 240, tuple(boxes))


def dets(*items: tuple[str, float, float, float, float, float]) -> Detections:
    """Detections from (cls, score, x, y, w, h)."""
    if not items:
        return Detections.empty(CLASSES)
    xyxy = [(x, y, x + w, y + h) for _, _, x, y, w, h in items]
    return Detections(
        np.array(xyxy), np.array([s for _, s, *_ in items]), [CLASSES.index(c) for c, *_ in items], CLASSES
    )


def exact(truth: FrameTruth, score: float = 0.9) -> Detections:
    return dets(*[(b.cls, score, b.x, b.y, b.w, b.h) for b in truth.boxes])


# Ten frames, two boxes each, one of each class, never overlapping.
TRUTH = [
    frame(1, i, Box("person", 10 + i, 20, 40, 80), Box("fallen_person", 150, 150 + i, 90, 40))
    for i in range(10)
]


def test_a_perfect_predictor_scores_one_everywhere() -> None:
    m = compute_metrics(TRUTH, [exact(t) for t in TRUTH], threshold=0.5)
    assert m.map == pytest.approx(1.0)
    assert m.map50 == pytest.approx(1.0)
    assert (m.precision, m.recall) == (1.0, 1.0)
    assert (m.ground_truth, m.detections, m.true_positives) == (20, 20, 20)
    for name in CLASSES:
        assert m.per_class[name].ap == pytest.approx(1.0)
        assert (m.per_class[name].precision, m.per_class[name].recall) == (1.0, 1.0)
    assert m.fp_per_1k_frames is None  # no frame without truth: nothing to count on
    assert m.fp_per_1k_all_frames == 0.0
    json.dumps(m.to_json())


def test_dropping_every_other_box_halves_recall_and_keeps_precision() -> None:
    predictions = [dets(*[(b.cls, 0.9, b.x, b.y, b.w, b.h) for b in t.boxes[::2]]) for t in TRUTH]
    m = compute_metrics(TRUTH, predictions)
    assert m.recall == 0.5
    assert m.precision == 1.0
    assert m.per_class["person"].recall == 1.0
    assert m.per_class["fallen_person"].recall == 0.0
    assert m.per_class["fallen_person"].ap == 0.0  # truth and no detection: AP 0, not undefined
    assert m.map == pytest.approx(0.5)  # the mean over the two classes


def test_false_boxes_on_empty_frames_give_exact_fp_per_1k() -> None:
    empty = [frame(2, i) for i in range(4)]
    truth = TRUTH + empty
    false_box = ("person", 0.8, 5.0, 5.0, 30.0, 30.0)
    predictions = [exact(t) for t in TRUTH] + [dets(false_box), dets(false_box, false_box), dets(), dets()]
    m = compute_metrics(truth, predictions, threshold=0.5)
    assert (m.frames, m.frames_without_truth) == (14, 4)
    assert m.fp_on_empty_frames == 3
    assert m.fp_per_1k_frames == pytest.approx(3 / 4 * 1000)
    assert m.fp_per_1k_all_frames == pytest.approx(3 / 14 * 1000)
    assert m.recall == 1.0
    assert m.precision == pytest.approx(20 / 23)
    # COCO ranks by score: every true box (0.9) outranks the false ones (0.8), so precision is 1 up
    # to full recall and AP stays 1; the false positives show in precision and FP/1k instead.
    assert m.map == pytest.approx(1.0)


def test_false_boxes_outranking_true_ones_cost_ap() -> None:
    truth = [frame(1, 0, Box("person", 10, 10, 40, 80)), frame(1, 1)]
    predictions = [dets(("person", 0.5, 10, 10, 40, 80)), dets(("person", 0.9, 200, 100, 40, 80))]
    m = compute_metrics(truth, predictions)
    # Ranked: FP (0.9), TP (0.5): precision 0.5 at recall 1, so COCO's interpolated AP is 0.5.
    assert m.map50 == pytest.approx(0.5)
    assert m.fp_per_1k_frames == pytest.approx(1000.0)


def test_threshold_counts_only_boxes_scoring_at_least_it_but_ap_sees_all() -> None:
    truth = [frame(1, 0, Box("person", 10, 10, 40, 80), Box("person", 200, 10, 40, 80))]
    predictions = [dets(("person", 0.6, 10, 10, 40, 80), ("person", 0.4, 200, 10, 40, 80))]
    m = compute_metrics(truth, predictions, threshold=0.5)
    assert (m.detections, m.true_positives, m.recall) == (1, 1, 0.5)
    assert m.map50 == pytest.approx(1.0)
    exactly_at = compute_metrics(truth, predictions, threshold=0.6)
    assert exactly_at.true_positives == 1  # score >= threshold counts


@pytest.mark.parametrize(
    ("box", "hit"),
    [
        ((10, 10, 40, 80), True),  # IoU 1
        ((20, 10, 40, 80), True),  # IoU 30/50 = 0.6
        ((30, 10, 40, 80), False),  # IoU 20/60 = 0.33
    ],
)
def test_a_hit_needs_iou_of_at_least_half(box: tuple[float, float, float, float], hit: bool) -> None:
    truth = [frame(1, 0, Box("person", 10, 10, 40, 80))]
    m = compute_metrics(truth, [dets(("person", 0.9, *box))])
    assert m.true_positives == int(hit)
    assert m.precision == float(hit)


def test_matching_is_one_to_one_and_class_aware() -> None:
    truth = [frame(1, 0, Box("person", 10, 10, 40, 80))]
    duplicate = dets(("person", 0.9, 10, 10, 40, 80), ("person", 0.8, 10, 10, 40, 80))
    m = compute_metrics(truth, [duplicate])
    assert (m.detections, m.true_positives, m.false_positives) == (2, 1, 1)
    wrong_class = compute_metrics(truth, [dets(("fallen_person", 0.9, 10, 10, 40, 80))])
    assert wrong_class.true_positives == 0
    assert wrong_class.per_class["fallen_person"].ap is None  # no truth of that class: undefined
    assert wrong_class.per_class["person"].ap == 0.0


def test_a_box_counts_once_when_another_detection_takes_it_at_a_stricter_iou() -> None:
    """At IoU 0.5 the higher-scoring detection (IoU 0.6) takes the box; at IoU 0.75 only the other
    one (IoU 0.8) qualifies. Counting at the threshold is about IoU 0.5 alone: one hit, one miss."""
    truth = [frame(1, 0, Box("person", 100, 100, 100, 100))]
    taker = ("person", 0.9, 125.0, 100.0, 100.0, 100.0)  # IoU 7500 / 12500 = 0.6
    closer = ("person", 0.8, 111.1, 100.0, 100.0, 100.0)  # IoU 0.8
    m = compute_metrics(truth, [dets(taker, closer)])
    assert (m.detections, m.true_positives, m.recall, m.precision) == (2, 1, 1.0, 0.5)


def test_nothing_to_evaluate_is_undefined_not_zero() -> None:
    m = compute_metrics([], [])
    assert (m.map, m.precision, m.recall, m.fp_per_1k_frames, m.recall_fall) == (None,) * 5
    assert m.undefined_reason("map") == "no frames"


FALL = FallEvent(media_id=1, start_frame=5, end_frame=7, tolerance_frames=2)


@pytest.mark.parametrize(
    ("fallen_at", "score", "found"),
    [
        (5, 0.9, True),  # first frame of the segment
        (7, 0.9, True),  # last frame
        (9, 0.9, True),  # end + tolerance
        (10, 0.9, False),  # one frame too late
        (4, 0.9, False),  # before the fall
        (6, 0.3, False),  # below the threshold
    ],
)
def test_fall_recall_with_tolerance(fallen_at: int, score: float, found: bool) -> None:
    truth = [frame(1, i) for i in range(12)]
    predictions = [
        dets(("fallen_person", score, 10, 10, 80, 40)) if i == fallen_at else dets() for i in range(12)
    ]
    m = compute_metrics(truth, predictions, [FALL], threshold=0.5)
    assert (m.falls, m.falls_found) == (1, int(found))
    assert m.recall_fall == float(found)


def test_a_fall_outside_the_frames_is_not_counted() -> None:
    truth = [frame(1, i) for i in range(12)]
    elsewhere = FallEvent(media_id=2, start_frame=0, end_frame=3, tolerance_frames=10)
    predictions = [dets(("fallen_person", 0.9, 10, 10, 80, 40))] * 12
    m = compute_metrics(truth, predictions, [FALL, elsewhere])
    assert (m.falls, m.falls_found, m.recall_fall) == (1, 1, 1.0)


def test_a_resample_scores_like_evaluating_the_resampled_frames() -> None:
    """AP of a resample (faster-coco-eval's accumulate over kept per-image results) equals a full
    evaluation of the same frames laid out again, repeats included."""
    rng = np.random.default_rng(3)
    truth, predictions = [], []
    for i in range(30):
        boxes = [Box("person", 10 + 60 * j, 20, 40, 80) for j in range(int(rng.integers(0, 3)))]
        truth.append(frame(1, i, *boxes))
        found = [
            ("person", float(rng.random()), b.x + float(rng.normal(0, 6)), b.y, b.w, b.h)
            for b in boxes
            if rng.random() < 0.8
        ]
        if rng.random() < 0.3:
            found.append(("person", float(rng.random()), 250.0, 150.0, 40.0, 60.0))
        predictions.append(dets(*found))
    matched = match_detections(truth, predictions, threshold=0.5)
    whole = matched.summary()
    assert matched.summary(np.arange(30)).map == pytest.approx(whole.map)
    indices = rng.integers(0, 30, 30)
    resampled = matched.summary(indices)
    direct = compute_metrics([truth[i] for i in indices], [predictions[i] for i in indices], threshold=0.5)
    assert resampled.map == pytest.approx(direct.map)
    assert resampled.map50 == pytest.approx(direct.map50)
    assert (resampled.true_positives, resampled.detections) == (direct.true_positives, direct.detections)
    assert resampled.frames == 30
