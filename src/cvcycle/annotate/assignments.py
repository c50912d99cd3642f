"""Assignments and their drafts: opening an annotator's assignment on a task, saving drafts.

Saving carries the revision the annotator started from. The save is a compare-and-set on the
assignment's revision: if someone saved in between (a second annotator on the same task, the same
person in a second tab), the save raises Conflict and changes nothing, so the UI can show both
versions and let the person choose; nothing is ever overwritten silently.

A new draft starts from what the working copy already holds for the item (a box drawn from label
``key`` has the id ``l<key>``, see ``draft_label_key``), and records the frame's revision it was
built from; an image with no labels yet starts from the production model's detections recorded
with the events that opened the task, marked ``pseudo`` (with their score) until a person touches
them. Tasks themselves are ``tasks.py``'s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cvcycle.annotate.documents import Draft, check_fits
from cvcycle.annotate.pseudo import model_pseudo_labels
from cvcycle.annotate.records import AssignmentRecord, assignment_records, item_info, load_task
from cvcycle.data.labels import frame_revision
from cvcycle.data.versions import visible_at
from cvcycle.db.engine import Database
from cvcycle.db.models import Assignment, Dataset, Event, Label, Report, Segment, Task
from cvcycle.errors import Conflict, InvalidInput, NotFound
from cvcycle.store import BlobStore

_LABEL_ID = re.compile(r"l([0-9]{1,18})")


def assignment_not_found(assignment_id: int) -> NotFound:
    return NotFound(f"assignment {assignment_id} does not exist", hint="open the task to get its assignments")


def get_assignment(db: Database, assignment_id: int) -> AssignmentRecord:
    with db.read() as session:
        row = session.get(Assignment, assignment_id)
        if row is None:
            raise assignment_not_found(assignment_id)
        return assignment_records(session, [row])[0]


# -- creating ---------------------------------------------------------------------------------------


def _initial_draft(session: Session, task: Task, model_boxes: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The working copy's labels of the item; an unlabelled image gets the production model's boxes:
    those recorded with the events that opened the task, else ``model_boxes`` (see ``pseudo.py``)."""
    dataset = session.get(Dataset, task.dataset_id)
    assert dataset is not None
    version = dataset.working_version
    if task.media_id is not None:
        segments = session.scalars(
            select(Segment)
            .where(
                Segment.dataset_id == dataset.id,
                Segment.media_id == task.media_id,
                visible_at(Segment, version),
            )
            .order_by(Segment.start_frame, Segment.key)
        )
        return Draft.model_validate(
            {
                "segments": [
                    {
                        "id": f"s{s.key}",
                        "cls": s.cls,
                        "start": s.start_frame,
                        "end": s.end_frame,
                        "source": s.source,
                    }
                    for s in segments
                ]
            }
        ).model_dump()
    labels = list(
        session.scalars(
            select(Label)
            .where(
                Label.dataset_id == dataset.id, Label.frame_id == task.frame_id, visible_at(Label, version)
            )
            .order_by(Label.key)
        )
    )
    boxes = [
        {
            "id": f"l{b.key}",  # see draft_label_key
            "cls": b.cls,
            "box": {"x": b.x, "y": b.y, "w": b.w, "h": b.h},
            "source": b.source,
            "score": b.score,
        }
        for b in labels
    ]
    if not boxes:
        detections = session.scalars(
            select(Event.detections)
            .join(Report, Report.event_id == Event.id)
            .where(Report.task_id == task.id)
            .order_by(Event.id)
            .limit(1)
        ).first()
        for i, d in enumerate(detections or []):
            x, y, w, h = (float(v) for v in d["box"])
            boxes.append(
                {
                    "id": f"p{i}",
                    "cls": str(d["cls"]).strip() or "object",
                    "box": {"x": x, "y": y, "w": w, "h": h},
                    "source": "pseudo",
                    "score": d.get("score"),
                }
            )
        if not boxes:
            boxes = list(model_boxes or [])
    item = item_info(session, task)
    draft = Draft.model_validate({"boxes": boxes})
    return check_fits(draft, item.width, item.height, max(item.frame_count, 1)).model_dump()


def draft_label_key(box_id: str) -> int | None:
    """The working-copy label a draft box was loaded from (its id is ``l<key>``), None for other boxes."""
    match = _LABEL_ID.fullmatch(box_id)
    return int(match.group(1)) if match else None


def base_revision(session: Session, task: Task) -> str | None:
    """The revision of the task's frame now, for work that starts now; None for a video task."""
    if task.media_id is not None:
        return None
    dataset = session.get(Dataset, task.dataset_id)
    assert dataset is not None
    return frame_revision(session, dataset, task.frame_id)


def _unlabelled(session: Session, dataset_id: int, frame_id: int, task_id: int | None) -> bool:
    """Whether a new draft of this frame would start empty: no labels, no events' boxes."""
    dataset = session.get(Dataset, dataset_id)
    assert dataset is not None
    labelled = session.scalar(
        select(Label.id)
        .where(
            Label.dataset_id == dataset_id,
            Label.frame_id == frame_id,
            visible_at(Label, dataset.working_version),
        )
        .limit(1)
    )
    if labelled is not None:
        return False
    if task_id is None:
        return True
    seen = session.scalars(
        select(Event.detection_count)
        .join(Report, Report.event_id == Event.id)
        .where(Report.task_id == task_id)
        .order_by(Event.id)
    ).first()
    return not seen


def model_boxes_for(
    db: Database, store: BlobStore | None, dataset_id: int, frame_id: int, task_id: int | None
) -> list[dict[str, Any]] | None:
    """The production model's boxes for an image task whose draft would otherwise start empty.

    Computed before the write transaction that creates the assignment, so running the model never
    holds the database's write lock.
    """
    if store is None:
        return None
    with db.read() as session:
        if not _unlabelled(session, dataset_id, frame_id, task_id):
            return None
    return model_pseudo_labels(db, store, frame_id)


def new_assignment(
    session: Session, task: Task, annotator: str, model_boxes: list[dict[str, Any]] | None = None
) -> Assignment:
    now = datetime.now(UTC)
    row = Assignment(
        task_id=task.id,
        annotator=annotator,
        status="open",
        rev=1,
        draft=_initial_draft(session, task, model_boxes),
        base_revision=base_revision(session, task),
        created_at=now,
        updated_at=now,
        updated_by=None,
    )
    session.add(row)
    session.flush()
    return row


def restart_assignment(session: Session, task: Task, row: Assignment, by: str) -> None:
    """Start the assignment over from the working copy as it is now: a fresh draft at a new revision,
    based on the frame's current revision, open again (see ``tasks.reopen_task``)."""
    values = {
        "draft": _initial_draft(session, task, None),
        "base_revision": base_revision(session, task),
        "status": "open",
        "updated_by": by,
    }
    bump_revision(session, row, row.rev, values)


def check_person_name(name: str, what: str = "annotator") -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput(f"{what} must be a non-empty name of at most 200 characters, got {name!r}")
    return name.strip()


def open_assignment(
    db: Database, task_id: int, annotator: str, store: BlobStore | None = None
) -> AssignmentRecord:
    """The annotator's assignment on the task, taken now if the task has a free place.

    A task without overlap has one assignment that anyone who opens the task works on (revisions
    keep two people from overwriting each other); with overlap, each of the k annotators has their
    own, and a k+1-th is refused.
    """
    annotator = check_person_name(annotator)
    model_boxes = None
    with db.read() as session:
        task = load_task(session, task_id)
        taken = session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.task_id == task_id)
        )
        fresh = task.media_id is None and not (task.overlap == 1 and taken)
        where = (task.dataset_id, task.frame_id)
    if fresh:
        model_boxes = model_boxes_for(db, store, *where, task_id)
    with db.write() as session:
        task = load_task(session, task_id, lock=True)
        rows = list(
            session.scalars(select(Assignment).where(Assignment.task_id == task_id).order_by(Assignment.id))
        )
        mine = next((a for a in rows if a.annotator == annotator), None)
        if mine is None and task.overlap == 1 and rows:
            mine = rows[0]
        if mine is None:
            if len(rows) >= task.overlap:
                raise Conflict(
                    f"task {task_id} already has its {task.overlap} annotators "
                    f"({', '.join(a.annotator for a in rows)})",
                    hint="open one of their assignments to look at it, or pick another task",
                )
            if task.status != "open":
                raise Conflict(f"task {task_id} is already {task.status}")
            mine = new_assignment(session, task, annotator, model_boxes)
            if task.assignee is None:
                task.assignee = annotator
        return assignment_records(session, [mine])[0]


# -- saving -----------------------------------------------------------------------------------------


def locked_assignment(session: Session, assignment_id: int) -> Assignment:
    row = session.scalar(select(Assignment).where(Assignment.id == assignment_id).with_for_update())
    if row is None:
        raise assignment_not_found(assignment_id)
    return row


def stale_revision(row: Assignment, rev: int) -> Conflict:
    who = row.updated_by or row.annotator
    return Conflict(
        f"assignment {row.id} is at revision {row.rev} (saved by {who}); "
        f"this save was made on revision {rev}",
        hint="compare your version with theirs, then keep one and save again",
    )


def bump_revision(session: Session, row: Assignment, rev: int, values: dict[str, Any]) -> None:
    """Compare-and-set: write ``values`` and ``rev + 1`` only if the row is still at ``rev``."""
    result = session.execute(
        update(Assignment)
        .where(Assignment.id == row.id, Assignment.rev == rev)
        .values(rev=rev + 1, updated_at=datetime.now(UTC), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(row)
        raise stale_revision(row, rev)
    session.refresh(row)


def save_draft(db: Database, assignment_id: int, rev: int, draft: Draft, author: str) -> AssignmentRecord:
    """Store the annotator's draft if the assignment is still at ``rev``; Conflict otherwise."""
    author = check_person_name(author, "author")
    with db.write() as session:
        row = locked_assignment(session, assignment_id)
        if row.rev != rev:
            raise stale_revision(row, rev)
        if row.status in ("submitted", "accepted"):
            raise Conflict(
                f"assignment {assignment_id} is {row.status}: it can no longer be edited",
                hint="a reviewer's rejection reopens it",
            )
        task = load_task(session, row.task_id)
        if task.status != "open":
            raise Conflict(f"task {task.id} is already {task.status}")
        item = item_info(session, task)
        checked = check_fits(draft, item.width, item.height, max(item.frame_count, 1))
        bump_revision(
            session, row, rev, {"draft": checked.model_dump(), "updated_by": author, "status": "open"}
        )
        return assignment_records(session, [row])[0]
