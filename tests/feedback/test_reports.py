"""Reports: every verdict type, the task each non-confirming one opens, and bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from cvcycle.annotate.tasks import LabelSpec, list_tasks
from cvcycle.boxes import Box
from cvcycle.data.ingest import IngestResult
from cvcycle.data.snapshot import show_dataset
from cvcycle.db import Database
from cvcycle.db.models import Dataset, Media, Report
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.feedback.events import PushResult
from cvcycle.feedback.reports import parse_box, report_event
from cvcycle.refs import DatasetRef

Push = Callable[[list[Any]], PushResult]
PERSON = {"cls": "person", "score": 0.8, "box": [2, 3, 20, 30]}
DOG = {"cls": "person", "score": 0.6, "box": [30, 10, 20, 20]}


@pytest.fixture
def events(push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]], snapshot_b64) -> list[int]:  # type: ignore[no-untyped-def]
    """Event ids: [one detection, two detections, nothing detected, snapshot with one detection]."""
    result = push(
        [
            event(frame={"id": medium.frame_ids[0]}, detections=[PERSON]),
            event(frame={"id": medium.frame_ids[1]}, detections=[PERSON, DOG]),
            event(frame={"id": medium.frame_ids[2]}),
            event(snapshot=snapshot_b64(7), detections=[PERSON], source="cam-9"),
        ]
    )
    assert result.ok
    return result.event_ids


def test_every_report_type(db: Database, events: list[int], medium: IngestResult) -> None:
    one, two, empty, snap = events
    confirmed = report_event(db, one, "confirmed", operator="olga")
    assert (confirmed.detection, confirmed.task_id, confirmed.dataset) == (0, None, None)
    assert report_event(db, empty, "confirmed").detection is None  # the empty frame is right

    false = report_event(db, two, "false_detection", detection=1, operator="olga", comment="a dog")
    assert false.task_id is not None and false.dataset == "feedback"
    assert false.frame_id == medium.frame_ids[1]

    box = Box("person", 1, 2, 22, 30)
    inaccurate = report_event(db, one, "inaccurate_detection", box=box)
    assert (inaccurate.detection, inaccurate.box) == (0, LabelSpec(box.cls, box.xywh()))

    missed = report_event(db, empty, "missed_detection", box=parse_box("10,10,15,25,person"), dataset="other")
    assert (missed.detection, missed.dataset, missed.frame_id) == (None, "other", medium.frame_ids[2])

    tasks = {t.id: t for t in list_tasks(db)}
    assert len(tasks) == 3
    assert tasks[false.task_id].report_types == ["false_detection"]
    assert tasks[missed.task_id].dataset == "other" and tasks[missed.task_id].event_ids == [empty]
    with db.read() as s:
        feedback = show_dataset(s, DatasetRef("feedback"))
        other = show_dataset(s, DatasetRef("other"))
    assert feedback.frames == 2 and other.frames == 1

    # A snapshot becomes an image medium of the dataset, named by the snapshot's bytes.
    on_snapshot = report_event(db, snap, "false_detection")
    with db.read() as s:
        media = s.scalars(select(Media).where(Media.kind == "image")).one()
        assert media.source == "cam-9" and (media.width, media.height) == (64, 48)
        assert show_dataset(s, DatasetRef("feedback")).frames == 3
    assert on_snapshot.frame_id is not None and on_snapshot.task_id not in tasks


def test_reports_on_one_frame_share_its_open_task(db: Database, events: list[int]) -> None:
    _, two, _, snap = events
    a = report_event(db, two, "false_detection", detection=0)
    b = report_event(db, two, "missed_detection", box=Box("person", 40, 5, 10, 20))
    assert a.task_id == b.task_id
    (task,) = list_tasks(db, status="open")
    assert task.report_ids == [a.id, b.id] and task.report_types == ["false_detection", "missed_detection"]
    # Snapshot events reported twice reuse the medium made the first time.
    c = report_event(db, snap, "false_detection")
    d = report_event(db, snap, "missed_detection", box=Box("person", 1, 1, 5, 5))
    assert c.frame_id == d.frame_id and c.task_id == d.task_id


@pytest.mark.parametrize(
    ("which", "kwargs", "error", "message"),
    [
        ("unknown", {"type": "false_detection"}, NotFound, "event 999999 does not exist"),
        ("empty", {"type": "missed_detection"}, InvalidInput, "needs the box"),
        ("one", {"type": "inaccurate_detection"}, InvalidInput, "needs the box"),
        ("two", {"type": "false_detection", "detection": 2}, InvalidInput, "out of range"),
        ("one", {"type": "false_detection", "detection": -1}, InvalidInput, "out of range"),
        ("two", {"type": "false_detection"}, InvalidInput, "has 2 detections"),
        ("empty", {"type": "false_detection"}, InvalidInput, "has no detections"),
        ("one", {"type": "confirmed", "box": Box("person", 1, 1, 5, 5)}, InvalidInput, "takes no box"),
        (
            "empty",
            {"type": "missed_detection", "detection": 0, "box": Box("person", 1, 1, 5, 5)},
            InvalidInput,
            "names no detection",
        ),
        (
            "empty",
            {"type": "missed_detection", "box": Box("person", 50, 1, 30, 5)},
            InvalidInput,
            "outside",
        ),
        (
            "empty",
            {"type": "missed_detection", "box": Box("person", 1, 1, 0, 5)},
            InvalidInput,
            "positive",
        ),
        ("one", {"type": "wrong_class"}, InvalidInput, "not one of"),
        ("one", {"type": "false_detection", "dataset": "bad name"}, InvalidInput, "dataset name"),
    ],
)
def test_bad_reports_are_refused_and_leave_nothing(
    db: Database, events: list[int], which: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    ids = {"one": events[0], "two": events[1], "empty": events[2], "unknown": 999999}
    with pytest.raises(error, match=message):
        report_event(db, ids[which], **kwargs)
    assert list_tasks(db) == []
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Report)) == 0
        assert s.scalar(select(func.count()).select_from(Dataset).where(Dataset.name != "prod")) == 0


def test_box_text() -> None:
    assert parse_box(" 1, 2.5,3,4 , fallen_person") == Box("fallen_person", 1, 2.5, 3, 4)
    for bad in ("1,2,3,4", "a,b,c,d,person", "1,2,3,4,person,extra"):
        with pytest.raises(InvalidInput):
            parse_box(bad)
