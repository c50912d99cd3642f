"""Agreement math: IoU-matched F1 for boxes, temporal IoU for segments, table-driven."""

from __future__ import annotations

import pytest

from cvcycle.annotate.agreement import (
    ClassRange,
    agreement,
    boxes_f1,
    match_boxes,
    segments_tiou,
    temporal_iou,
)
from cvcycle.boxes import Box

P = "person"


@pytest.mark.parametrize(
    ("a", "b", "f1"),
    [
        ([], [], 1.0),
        ([Box(P, 0, 0, 10, 10)], [], 0.0),
        ([Box(P, 0, 0, 10, 10)], [Box(P, 1, 0, 10, 10)], 1.0),  # IoU 0.82
        ([Box(P, 0, 0, 10, 10)], [Box("dog", 0, 0, 10, 10)], 0.0),  # class must agree
        ([Box(P, 0, 0, 10, 10)], [Box(P, 5, 0, 10, 10)], 0.0),  # IoU 1/3 < 0.5
        (
            [Box(P, 0, 0, 10, 10), Box(P, 50, 50, 10, 10)],
            [Box(P, 0, 0, 10, 10)],
            2 * 1 / 3,
        ),
    ],
)
def test_boxes_f1(a: list[Box], b: list[Box], f1: float) -> None:
    assert boxes_f1(a, b) == pytest.approx(f1)
    assert boxes_f1(b, a) == pytest.approx(f1)


def test_matching_is_one_to_one_and_prefers_the_best_overlap() -> None:
    a = [Box(P, 0, 0, 10, 10), Box(P, 2, 0, 10, 10)]
    b = [Box(P, 2, 0, 10, 10)]
    assert [(i, j) for i, j, _ in match_boxes(a, b)] == [(1, 0)]


@pytest.mark.parametrize(
    ("a", "b", "tiou"),
    [
        (ClassRange("fall", 0, 9), ClassRange("fall", 0, 9), 1.0),
        (ClassRange("fall", 0, 9), ClassRange("fall", 5, 14), 5 / 15),
        (ClassRange("fall", 0, 9), ClassRange("fall", 10, 19), 0.0),
        (ClassRange("fall", 0, 9), ClassRange("sit", 0, 9), 0.0),
        (ClassRange("fall", 3, 3), ClassRange("fall", 3, 3), 1.0),  # one frame, inclusive
    ],
)
def test_temporal_iou(a: ClassRange, b: ClassRange, tiou: float) -> None:
    assert temporal_iou(a, b) == pytest.approx(tiou)


@pytest.mark.parametrize(
    ("a", "b", "score"),
    [
        ([], [], 1.0),
        ([ClassRange("fall", 0, 9)], [], 0.0),
        # One action split in two pieces by one annotator covers the same frames: full agreement.
        ([ClassRange("fall", 0, 9)], [ClassRange("fall", 0, 4), ClassRange("fall", 5, 9)], 1.0),
        ([ClassRange("fall", 0, 9)], [ClassRange("fall", 0, 4)], 0.5),
        # Averaged over the classes either used: fall agrees fully, sit not at all.
        ([ClassRange("fall", 0, 9), ClassRange("sit", 20, 29)], [ClassRange("fall", 0, 9)], 0.5),
    ],
)
def test_segments_tiou(a: list[ClassRange], b: list[ClassRange], score: float) -> None:
    assert segments_tiou(a, b) == pytest.approx(score)
    assert segments_tiou(b, a) == pytest.approx(score)


def test_agreement_of_k_annotators_is_the_mean_over_pairs() -> None:
    box = Box(P, 0, 0, 10, 10)
    work = [("a", [box], []), ("b", [box], []), ("c", [], [])]
    result = agreement(work)
    assert result.pairs == 3
    assert result.boxes_f1 == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert result.segments_tiou == 1.0
    single = agreement(work[:1])
    assert single.pairs == 0 and single.boxes_f1 is None


def test_tracks_agree_frame_by_frame_whatever_their_keyframes() -> None:
    from cvcycle.annotate.documents import Draft
    from cvcycle.annotate.review import draft_work

    def track(*keys: tuple[int, float]) -> Draft:
        keyframes = [{"frame": f, "box": {"x": x, "y": 0, "w": 10, "h": 10}} for f, x in keys]
        return Draft.model_validate({"tracks": [{"id": "t", "cls": P, "keyframes": keyframes}]})

    # The same motion, keyframed at frames 0 and 10 by one and at 0, 5, 10 by the other.
    same = draft_work([("a", track((0, 0), (10, 20))), ("b", track((0, 0), (5, 10), (10, 20)))])
    assert agreement(same).boxes_f1 == 1.0
    # The second annotator's object runs away from the first one's after frame 0.
    apart = draft_work([("a", track((0, 0), (10, 20))), ("b", track((0, 0), (10, 200)))])
    assert agreement(apart).boxes_f1 == pytest.approx(2 * 1 / 4)  # frames 0 and 10: one of two match
