"""Statistics on a small hand-made set: counts and rates per model version, source and (UTC) day."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cvcycle.boxes import Box
from cvcycle.data.ingest import IngestResult
from cvcycle.db import Database
from cvcycle.errors import InvalidInput
from cvcycle.feedback.events import PushResult
from cvcycle.feedback.reports import report_event, sample_review_frames
from cvcycle.feedback.stats import feedback_stats, parse_group_by

Push = Callable[[list[Any]], PushResult]
BOX = Box("person", 1, 1, 10, 10)


def _det(x: float) -> dict[str, Any]:
    return {"cls": "person", "score": 0.7, "box": [x, 1, 10, 10]}


@pytest.fixture
def reviewed(db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]) -> None:
    f = {"id": medium.frame_ids[0]}
    day25, day26 = "2026-11-25T10:00:00Z", "2026-11-26T12:00:00Z"
    ids = push(
        [
            event(frame=f, time=day25, detections=[_det(1), _det(20)]),  # e1
            event(frame=f, time=day25, detections=[_det(1)]),  # e2
            event(frame={"id": medium.frame_ids[1]}, time=day25),  # e3: nothing seen
            # 02:00 at +03:00 is still the 25th in UTC.
            event(frame=f, time="2026-11-26T02:00:00+03:00", detections=[_det(5)]),  # e4
            event(frame=f, time=day26, detections=[_det(1), _det(15), _det(30)]),  # e5
            event(frame=f, time=day25, source="cam-2", detections=[_det(1)]),  # e6: never reviewed
            event(frame=f, time=day25, model="detector@2", detections=[_det(1)]),  # e7
            event(frame={"id": medium.frame_ids[2]}, time=day25, model="detector@2"),  # e8: nothing seen
        ]
    ).event_ids
    e1, e2, e3, e4, e5, _, e7, e8 = ids
    report_event(db, e1, "confirmed", detection=0)
    report_event(db, e1, "false_detection", detection=1)
    report_event(db, e2, "inaccurate_detection", box=BOX)
    assert [p.event_id for p in sample_review_frames(db, "detector@1", seed=1)] == [e3]
    report_event(db, e3, "confirmed")  # looked at, but the missed person was found later
    report_event(db, e3, "missed_detection", box=BOX)
    report_event(db, e4, "confirmed")  # its one detection
    report_event(db, e5, "confirmed")  # all three detections
    report_event(db, e7, "false_detection")
    report_event(db, e8, "missed_detection", box=BOX)
    report_event(db, e8, "missed_detection", box=Box("person", 30, 1, 10, 10))


def _row(**fields: Any) -> dict[str, Any]:
    base = {
        "model_name": "detector",
        "model_version": 1,
        "source": "cam-1",
        "day": "2026-11-25",
        "sampled": 0,
    }
    return {**base, **fields}


def test_counts_and_rates_per_model_version_source_and_day(db: Database, reviewed: None) -> None:
    rows = [r.to_json() for r in feedback_stats(db)]
    expected = [
        _row(
            events=4, detections=4, sampled=1, frames_reviewed=4, confirmed=2, false_detection=1,
            inaccurate_detection=1, missed_detection=1, detections_reviewed=4,
            false_rate=0.25, inaccurate_rate=0.25, missed_rate=0.25,
        ),
        _row(
            source="cam-1", day="2026-11-26", events=1, detections=3, frames_reviewed=1, confirmed=3,
            false_detection=0, inaccurate_detection=0, missed_detection=0, detections_reviewed=3,
            false_rate=0.0, inaccurate_rate=0.0, missed_rate=0.0,
        ),
        _row(
            source="cam-2", events=1, detections=1, frames_reviewed=0, confirmed=0, false_detection=0,
            inaccurate_detection=0, missed_detection=0, detections_reviewed=0,
            false_rate=None, inaccurate_rate=None, missed_rate=None,
        ),
        _row(
            model_version=2, events=2, detections=1, frames_reviewed=2, confirmed=0, false_detection=1,
            inaccurate_detection=0, missed_detection=2, detections_reviewed=1,
            false_rate=1.0, inaccurate_rate=0.0, missed_rate=1.0,
        ),
    ]  # fmt: skip
    assert rows == expected


def test_other_groupings(db: Database, reviewed: None) -> None:
    by_version = {r.model: r for r in feedback_stats(db, ("model_version",))}
    assert set(by_version) == {"detector@1", "detector@2"}
    v1, v2 = by_version["detector@1"], by_version["detector@2"]
    assert (v1.events, v1.frames_reviewed, v1.detections_reviewed, v1.false_detection) == (6, 5, 7, 1)
    assert (v1.false_rate, v1.missed_rate, v1.source, v1.day) == (1 / 7, 1 / 5, None, None)
    assert (v2.false_rate, v2.missed_rate) == (1.0, 1.0)

    (total,) = feedback_stats(db, ())
    assert (total.events, total.missed_detection, total.model) == (8, 3, None)
    assert [r.day for r in feedback_stats(db, ("day",))] == ["2026-11-25", "2026-11-26"]
    assert feedback_stats(db, ("source",), model="nobody") == []
    with pytest.raises(InvalidInput, match="'camera'"):
        feedback_stats(db, ("camera",))


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("model_version,source,day", ("model_version", "source", "day")),
        (" day , source ", ("day", "source")),
        ("model_name,,day", ("model_name", "day")),
        ("", ()),
        ("  ", ()),
    ],
)
def test_a_grouping_is_read_from_comma_separated_keys(text: str, keys: tuple[str, ...]) -> None:
    assert parse_group_by(text) == keys


def test_a_grouping_of_commas_names_no_key() -> None:
    with pytest.raises(InvalidInput, match="names no key"):
        parse_group_by(" , ,")
