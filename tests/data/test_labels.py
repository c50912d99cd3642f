"""A frame's boxes as a whole: its revision, and replacing them only if it did not change."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from cvcycle.data.datasets import get_dataset
from cvcycle.data.labels import (
    BoxInput,
    add_boxes,
    delete_box,
    edit_box,
    frame_revision,
    replace_frame_boxes,
)
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import Label
from cvcycle.errors import Conflict, InvalidInput, NotFound


def _revision(db: Database, frame: int) -> str:
    with db.read() as s:
        return frame_revision(s, get_dataset(s, "ds"), frame)


def _boxes(db: Database, frame: int) -> list[tuple[Any, ...]]:
    with db.read() as s:
        rows = s.execute(
            select(Label.key, Label.rev, Label.author, Label.cls, Label.x, Label.source).where(
                Label.frame_id == frame, Label.deleted_v.is_(None)
            )
        ).all()
    return sorted(tuple(r) for r in rows)


def test_any_change_to_a_frames_boxes_changes_its_revision_but_a_commit_does_not(
    db: Database, make_medium: Any
) -> None:
    medium = make_medium("ds", 2)
    frame, other = medium.frame_ids
    seen = [_revision(db, frame)]
    with db.write() as s:
        key = add_boxes(s, "ds", [BoxInput(frame, "cat", 1, 1, 5, 5)])[0]
    seen.append(_revision(db, frame))
    with db.write() as s:
        edit_box(s, "ds", key, 1, {"x": 2})
    seen.append(_revision(db, frame))
    with db.write() as s:
        add_boxes(s, "ds", [BoxInput(other, "cat", 1, 1, 5, 5)])  # another frame
        commit_version(s, "ds", "v1")
    assert _revision(db, frame) == seen[-1]
    with db.write() as s:
        delete_box(s, "ds", key, 2)
    # Empty again: the frame holds what it held at first, so its revision is the first one again.
    assert len(set(seen)) == 3 and _revision(db, frame) == seen[0] != _revision(db, other)


def test_replacing_writes_only_what_changed(db: Database, make_medium: Any) -> None:
    frame = make_medium("ds", 1).frame_ids[0]
    with db.write() as s:
        same, moved, gone = add_boxes(
            s,
            "ds",
            [
                BoxInput(frame, "cat", 1, 1, 5, 5),
                BoxInput(frame, "dog", 10, 10, 5, 5),
                BoxInput(frame, "car", 20, 20, 5, 5),
            ],
            author="old",
        )
    given = [
        BoxInput(frame, "cat", 1, 1, 5, 5),  # no key, but equal to a box of the frame: kept
        BoxInput(frame, "dog", 12, 10, 5, 5),  # drawn from `moved`: edited
        BoxInput(frame, "bird", 30, 30, 5, 5),  # new
    ]
    with db.write() as s:
        done = replace_frame_boxes(
            s, "ds", frame, given, "ann", _revision(db, frame), keys=[None, moved, None]
        )
    assert (done.kept, done.edited, done.added, done.deleted) == (1, 1, 1, 1)
    assert done.keys[:2] == [same, moved] and done.revision == _revision(db, frame)
    assert _boxes(db, frame) == [
        (same, 1, "old", "cat", 1, "human"),
        (moved, 2, "ann", "dog", 12, "human"),
        (done.keys[2], 1, "ann", "bird", 30, "human"),
    ]
    assert gone not in {b[0] for b in _boxes(db, frame)}


def test_a_stale_revision_is_refused_and_nothing_is_written(db: Database, make_medium: Any) -> None:
    frame = make_medium("ds", 1).frame_ids[0]
    seen = _revision(db, frame)
    with db.write() as s:
        add_boxes(s, "ds", [BoxInput(frame, "cat", 1, 1, 5, 5)], author="old")
    before = _boxes(db, frame)
    with (
        pytest.raises(Conflict, match=rf"frame {frame} of dataset 'ds' changed .*\(revision {seen} -> "),
        db.write() as s,
    ):
        replace_frame_boxes(s, "ds", frame, [], "ann", seen)
    assert _boxes(db, frame) == before


def test_boxes_off_the_frame_are_refused(db: Database, make_medium: Any) -> None:
    frame, other = make_medium("ds", 2).frame_ids
    revision = _revision(db, frame)
    with pytest.raises(InvalidInput, match=f"box 0: it is on frame {other}"), db.write() as s:
        replace_frame_boxes(s, "ds", frame, [BoxInput(other, "cat", 1, 1, 5, 5)], "ann", revision)
    with pytest.raises(InvalidInput, match=r"box 0: .* outside"), db.write() as s:
        replace_frame_boxes(s, "ds", frame, [BoxInput(frame, "cat", 60, 1, 10, 5)], "ann", revision)
    with pytest.raises(NotFound, match="frame 424242 is not in the working copy"), db.write() as s:
        replace_frame_boxes(s, "ds", 424242, [], "ann", revision)
