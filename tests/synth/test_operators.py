"""The simulated operators' judgement, case by case."""

from __future__ import annotations

import pytest

from cvcycle.synth.operators import TruthBox, iou, judge


def det(cls: str, score: float, x: float, y: float, w: float, h: float) -> dict[str, object]:
    return {"cls": cls, "score": score, "box": [x, y, w, h]}


PERSON = TruthBox("person", 10, 10, 20, 40)
FALLEN = TruthBox("fallen_person", 100, 100, 40, 20)


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


@pytest.mark.parametrize(
    ("detections", "truth", "expected"),
    [
        ([det("person", 0.9, 10, 10, 20, 40)], [PERSON], ([0], [], [], [])),
        ([det("person", 0.9, 200, 10, 20, 40)], [PERSON], ([], [0], [], [PERSON])),
        ([det("person", 0.9, 100, 100, 40, 20)], [FALLEN], ([], [], [(0, FALLEN)], [])),
        ([], [PERSON, FALLEN], ([], [], [], [PERSON, FALLEN])),
        (
            [det("person", 0.9, 10, 10, 20, 40), det("person", 0.5, 11, 10, 20, 40)],
            [PERSON],
            ([0], [1], [], []),
        ),  # a duplicate is false
        ([det("person", 0.4, 200, 200, 5, 5)], [], ([], [0], [], [])),
    ],
)
def test_judge(detections, truth, expected) -> None:  # type: ignore[no-untyped-def]
    out = judge(detections, truth)
    assert (out.confirmed, out.false, out.inaccurate, out.missed) == tuple(expected)
