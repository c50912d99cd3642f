"""The simulated operators' judgement, case by case."""

from __future__ import annotations

import pytest

from cvcycle.boxes import Box
from cvcycle.synth.operators import judge


def det(cls: str, score: float, x: float, y: float, w: float, h: float) -> dict[str, object]:
    return {"cls": cls, "score": score, "box": [x, y, w, h]}


PERSON = Box("person", 10, 10, 20, 40)
FALLEN = Box("fallen_person", 100, 100, 40, 20)


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
