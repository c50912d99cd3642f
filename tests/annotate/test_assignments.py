"""Assignment services on both databases: compare-and-set saves, overlap, acceptance into the working copy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cvcycle.annotate.assignments import open_assignment, save_draft
from cvcycle.annotate.documents import Draft
from cvcycle.annotate.review import SpotCheck, review_assignment, submit_assignment
from cvcycle.annotate.tasks import create_task
from cvcycle.db import Database
from cvcycle.db.models import Label, Segment
from cvcycle.errors import Conflict, InvalidInput, NotFound

NO_SPOT_CHECKS = SpotCheck(share=0.0)


def _draft(**parts: Any) -> Draft:
    return Draft.model_validate(parts)


def test_a_stale_save_is_refused_and_changes_nothing(db: Database, make_medium: Any) -> None:
    medium = make_medium("ds", frames=3)
    task = create_task(db, "ds", frame_id=medium.frame_ids[1], annotators=["ann"])
    first = open_assignment(db, task.id, "ann")
    box = {"id": "a", "cls": "cat", "box": {"x": 1, "y": 2, "w": 10, "h": 10}}
    saved = save_draft(db, first.id, 1, _draft(boxes=[box]), "ann")
    assert saved.rev == 2
    with pytest.raises(Conflict, match="revision 2"):
        save_draft(db, first.id, 1, _draft(boxes=[]), "bob")
    again = open_assignment(db, task.id, "bob")  # no overlap: the same assignment
    assert again.id == first.id and again.rev == 2 and again.draft["boxes"][0]["cls"] == "cat"


def test_boxes_outside_the_frame_name_their_field(db: Database, make_medium: Any) -> None:
    medium = make_medium("ds", frames=1)  # 64x48 frames
    task = create_task(db, "ds", frame_id=medium.frame_ids[0])
    a = open_assignment(db, task.id, "ann")
    outside = {"id": "a", "cls": "cat", "box": {"x": 60, "y": 2, "w": 10, "h": 10}}
    with pytest.raises(InvalidInput, match=r"boxes\.0\.box: .* outside the 64x48 frame"):
        save_draft(db, a.id, 1, _draft(boxes=[outside]), "ann")
    nudged = {
        "id": "a",
        "cls": "cat",
        "box": {"x": -0.5, "y": 2, "w": 10, "h": 10},
    }  # within tolerance: clipped
    assert save_draft(db, a.id, 1, _draft(boxes=[nudged]), "ann").draft["boxes"][0]["box"]["x"] == 0


def test_accepted_work_replaces_the_frame_boxes_and_keeps_pseudo_sources(
    db: Database, make_medium: Any
) -> None:
    medium = make_medium("ds", frames=2)
    frame = medium.frame_ids[0]
    task = create_task(db, "ds", frame_id=frame, annotators=["ann"])
    a = open_assignment(db, task.id, "ann")
    boxes = [
        {"id": "p", "cls": "cat", "box": {"x": 1, "y": 1, "w": 5, "h": 5}, "source": "pseudo", "score": 0.7},
        {"id": "h", "cls": "dog", "box": {"x": 20, "y": 10, "w": 8, "h": 9}, "source": "human"},
    ]
    save_draft(db, a.id, 1, _draft(boxes=boxes), "ann")
    done = submit_assignment(db, a.id, 2, "ann", NO_SPOT_CHECKS)
    assert done.status == "accepted"
    with db.read() as session:
        rows = session.execute(
            select(Label.cls, Label.source, Label.score, Label.author).where(
                Label.frame_id == frame, Label.deleted_v.is_(None)
            )
        ).all()
    assert sorted(rows) == [("cat", "pseudo", pytest.approx(0.7), "ann"), ("dog", "human", None, "ann")]
    with pytest.raises(Conflict, match="accepted"):
        save_draft(db, a.id, 3, _draft(), "ann")


def test_overlap_needs_every_annotator_before_acceptance(db: Database, make_medium: Any) -> None:
    medium = make_medium("ds", frames=4)
    task = create_task(db, "ds", media_id=medium.media_id, annotators=["a", "b"], overlap=2)
    assert task.item.mode == "video"
    with pytest.raises(Conflict, match="2 annotators"):
        open_assignment(db, task.id, "c")
    a, b = (open_assignment(db, task.id, n) for n in ("a", "b"))
    save_draft(db, a.id, 1, _draft(segments=[{"id": "s", "cls": "fall", "start": 0, "end": 2}]), "a")
    submitted = submit_assignment(db, a.id, 2, "a", NO_SPOT_CHECKS)
    assert submitted.status == "submitted" and submitted.review_reason == "overlap"
    with pytest.raises(Conflict, match="1 of its 2"):
        review_assignment(db, a.id, "accept", "rita")
    submit_assignment(db, b.id, 1, "b", NO_SPOT_CHECKS)
    review_assignment(db, a.id, "accept", "rita")
    with db.read() as session:
        segments = session.execute(
            select(Segment.cls, Segment.start_frame, Segment.end_frame).where(
                Segment.media_id == medium.media_id, Segment.deleted_v.is_(None)
            )
        ).all()
    assert segments == [("fall", 0, 2)]


def test_unknown_ids(db: Database) -> None:
    with pytest.raises(NotFound, match="task 4242"):
        open_assignment(db, 4242, "ann")
    with pytest.raises(NotFound, match="assignment 77"):
        save_draft(db, 77, 1, _draft(), "ann")
