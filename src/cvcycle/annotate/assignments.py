"""Tasks seen by annotators: creating them, listing mine / all, opening an assignment, saving drafts.

Saving carries the revision the annotator started from. The save is a compare-and-set on the
assignment's revision: if someone saved in between (a second annotator on the same task, the same
person in a second tab), the save raises Conflict and changes nothing, so the UI can show both
versions and let the person choose; nothing is ever overwritten silently.

A new assignment starts from what the working copy already holds for the item; an image with no
labels yet starts from the production model's detections recorded with the events that opened the
task, marked ``pseudo`` (with their score) until a person touches them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from cvcycle.annotate.documents import Draft, check_fits
from cvcycle.annotate.pseudo import model_pseudo_labels
from cvcycle.data.datasets import get_dataset
from cvcycle.data.versions import visible_at
from cvcycle.db.engine import Database
from cvcycle.db.models import (
    Assignment,
    Dataset,
    DatasetFrame,
    DatasetMedia,
    Event,
    Frame,
    Label,
    Media,
    ModelAlias,
    ModelVersion,
    Report,
    Review,
    Segment,
    Task,
    as_utc,
)
from cvcycle.errors import Conflict, InvalidInput, NotFound
from cvcycle.store import BlobStore

ASSIGNMENT_STATUSES = ("open", "submitted", "accepted", "rejected")
MAX_OVERLAP = 10


def task_not_found(task_id: int) -> NotFound:
    return NotFound(f"task {task_id} does not exist", hint="see the tasks at /api/tasks")


def assignment_not_found(assignment_id: int) -> NotFound:
    return NotFound(f"assignment {assignment_id} does not exist", hint="open the task to get its assignments")


@dataclass(frozen=True)
class ReviewRecord:
    reviewer: str
    verdict: str
    comment: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "verdict": self.verdict,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class AssignmentRecord:
    id: int
    task_id: int
    annotator: str
    status: str
    rev: int
    draft: dict[str, Any]
    review_reason: str | None
    updated_at: datetime
    updated_by: str | None
    submitted_at: datetime | None
    reviews: list[ReviewRecord] = field(default_factory=list)

    def to_json(self, with_draft: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "task_id": self.task_id,
            "annotator": self.annotator,
            "status": self.status,
            "rev": self.rev,
            "review_reason": self.review_reason,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "reviews": [r.to_json() for r in self.reviews],
        }
        if with_draft:
            out["draft"] = self.draft
        return out


@dataclass(frozen=True)
class ItemInfo:
    """What the task is about: one frame (image mode) or one whole video (video mode)."""

    mode: str  # image | video
    media_id: int
    frame_id: int
    frame_index: int
    width: int
    height: int
    fps: float | None
    frame_count: int
    file_name: str

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "media_id": self.media_id,
            "frame_id": self.frame_id,
            "frame_index": self.frame_index,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frame_count": self.frame_count,
            "file_name": self.file_name,
            "frame_url": f"/api/media/{self.media_id}/frames/{{index}}.jpg",
        }


@dataclass(frozen=True)
class TaskSummary:
    id: int
    status: str
    dataset: str
    mode: str
    frame_id: int
    media_id: int | None
    overlap: int
    assignee: str | None
    created_at: datetime
    done_at: datetime | None
    report_types: list[str]
    assignments: list[AssignmentRecord]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "dataset": self.dataset,
            "mode": self.mode,
            "frame_id": self.frame_id,
            "media_id": self.media_id,
            "overlap": self.overlap,
            "assignee": self.assignee,
            "created_at": self.created_at.isoformat(),
            "done_at": self.done_at.isoformat() if self.done_at else None,
            "report_types": self.report_types,
            "assignments": [a.to_json(with_draft=False) for a in self.assignments],
        }


@dataclass(frozen=True)
class TaskDetail:
    task: TaskSummary
    item: ItemInfo
    box_classes: list[str]
    action_classes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.task.to_json(),
            "item": self.item.to_json(),
            "classes": {"boxes": self.box_classes, "actions": self.action_classes},
        }


# -- reading ----------------------------------------------------------------------------------------


def assignment_records(session: Session, rows: Sequence[Assignment]) -> list[AssignmentRecord]:
    reviews: dict[int, list[ReviewRecord]] = defaultdict(list)
    ids = [a.id for a in rows]
    if ids:
        for r in session.scalars(select(Review).where(Review.assignment_id.in_(ids)).order_by(Review.id)):
            reviews[r.assignment_id].append(
                ReviewRecord(r.reviewer, r.verdict, r.comment, as_utc(r.created_at))
            )
    return [
        AssignmentRecord(
            a.id,
            a.task_id,
            a.annotator,
            a.status,
            a.rev,
            a.draft,
            a.review_reason,
            as_utc(a.updated_at),
            a.updated_by,
            as_utc(a.submitted_at) if a.submitted_at else None,
            reviews[a.id],
        )
        for a in rows
    ]


def task_summaries(session: Session, tasks: Sequence[Task]) -> list[TaskSummary]:
    ids = [t.id for t in tasks]
    names = dict(
        session.execute(
            select(Dataset.id, Dataset.name).where(Dataset.id.in_({t.dataset_id for t in tasks}))
        ).all()
    )
    by_task: dict[int, list[Assignment]] = defaultdict(list)
    report_types: dict[int, list[str]] = defaultdict(list)
    if ids:
        for a in session.scalars(
            select(Assignment).where(Assignment.task_id.in_(ids)).order_by(Assignment.id)
        ):
            by_task[a.task_id].append(a)
        for task_id, kind in session.execute(
            select(Report.task_id, Report.type).where(Report.task_id.in_(ids)).order_by(Report.id)
        ):
            report_types[int(task_id or 0)].append(kind)
    records = {r.id: r for r in assignment_records(session, [a for t in tasks for a in by_task[t.id]])}
    return [
        TaskSummary(
            id=t.id,
            status=t.status,
            dataset=names[t.dataset_id],
            mode="video" if t.media_id is not None else "image",
            frame_id=t.frame_id,
            media_id=t.media_id,
            overlap=t.overlap,
            assignee=t.assignee,
            created_at=as_utc(t.created_at),
            done_at=as_utc(t.done_at) if t.done_at else None,
            report_types=report_types[t.id],
            assignments=[records[a.id] for a in by_task[t.id]],
        )
        for t in tasks
    ]


def list_annotation_tasks(
    db: Database, annotator: str | None = None, status: str | None = None, limit: int = 500
) -> list[TaskSummary]:
    """Annotate tasks, newest first: all of them, or those of ``annotator`` (assigned or theirs to do)."""
    if status is not None and status not in ("open", "done", "cancelled"):
        raise InvalidInput(f"status {status!r} is not one of open, done, cancelled")
    query = select(Task).where(Task.kind == "annotate").order_by(Task.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Task.status == status)
    if annotator is not None:
        mine = select(Assignment.task_id).where(Assignment.annotator == annotator)
        query = query.where(or_(Task.assignee == annotator, Task.id.in_(mine)))
    with db.read() as session:
        return task_summaries(session, list(session.scalars(query)))


def item_info(session: Session, task: Task) -> ItemInfo:
    frame = session.get(Frame, task.frame_id)
    if frame is None:
        raise NotFound(f"the frame of task {task.id} no longer exists")
    media = session.get(Media, frame.media_id)
    assert media is not None
    if task.media_id is not None:
        return ItemInfo(
            "video",
            media.id,
            frame.id,
            0,
            media.width,
            media.height,
            media.fps,
            media.frame_count,
            media.file_name,
        )
    return ItemInfo(
        "image",
        media.id,
        frame.id,
        frame.index,
        frame.width,
        frame.height,
        media.fps,
        media.frame_count,
        media.file_name,
    )


def _classes(session: Session, task: Task) -> tuple[list[str], list[str]]:
    """Classes for the pickers: the production model's first, in its order (its class 0 is the
    usual default), then those the dataset and the task's events use, sorted."""
    model: list[str] = []
    for names in session.scalars(
        select(ModelVersion.classes)
        .join(
            ModelAlias, and_(ModelAlias.name == ModelVersion.name, ModelAlias.version == ModelVersion.version)
        )
        .where(ModelAlias.alias == "production")
        .order_by(ModelVersion.name)
    ):
        model.extend(str(n) for n in names or [] if str(n) not in model)
    boxes = set(session.scalars(select(Label.cls).where(Label.dataset_id == task.dataset_id).distinct()))
    for event_detections in session.scalars(
        select(Event.detections).join(Report, Report.event_id == Event.id).where(Report.task_id == task.id)
    ):
        boxes.update(str(d.get("cls")) for d in event_detections)
    actions = set(
        session.scalars(select(Segment.cls).where(Segment.dataset_id == task.dataset_id).distinct())
    )
    if not actions:  # a dataset without actions yet: offer those used in any dataset
        actions.update(session.scalars(select(Segment.cls).distinct().limit(50)))
    box_classes = model + sorted(boxes - set(model))
    return box_classes or ["object"], sorted(actions) or ["action"]


def annotate_task(session: Session, task_id: int, *, lock: bool = False) -> Task:
    query = select(Task).where(Task.id == task_id)
    if lock:
        query = query.with_for_update()
    task = session.scalar(query)
    if task is None or task.kind != "annotate":
        raise task_not_found(task_id)
    return task


def get_annotation_task(db: Database, task_id: int) -> TaskDetail:
    with db.read() as session:
        task = annotate_task(session, task_id)
        box_classes, action_classes = _classes(session, task)
        return TaskDetail(
            task_summaries(session, [task])[0], item_info(session, task), box_classes, action_classes
        )


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
            "id": f"l{b.key}",
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


def _model_boxes(
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


def _new_assignment(
    session: Session, task: Task, annotator: str, model_boxes: list[dict[str, Any]] | None = None
) -> Assignment:
    now = datetime.now(UTC)
    row = Assignment(
        task_id=task.id,
        annotator=annotator,
        status="open",
        rev=1,
        draft=_initial_draft(session, task, model_boxes),
        created_at=now,
        updated_at=now,
        updated_by=None,
    )
    session.add(row)
    session.flush()
    return row


def check_person_name(name: str, what: str = "annotator") -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput(f"{what} must be a non-empty name of at most 200 characters, got {name!r}")
    return name.strip()


def create_annotation_task(
    db: Database,
    dataset: str,
    *,
    frame_id: int | None = None,
    media_id: int | None = None,
    annotators: Sequence[str] = (),
    overlap: int = 1,
    store: BlobStore | None = None,
) -> TaskDetail:
    """Open a task on one frame (image mode) or one video (video mode) of ``dataset``'s working copy.

    With ``store``, an unlabelled frame's drafts start from the production model's boxes.
    """
    if (frame_id is None) == (media_id is None):
        raise InvalidInput("give exactly one of frame_id (an image task) or media_id (a video task)")
    if not 1 <= overlap <= MAX_OVERLAP:
        raise InvalidInput(f"overlap must be from 1 to {MAX_OVERLAP}, got {overlap}")
    names = [check_person_name(a) for a in annotators]
    if len(set(names)) != len(names) or len(names) > overlap:
        raise InvalidInput(
            f"annotators must be distinct and at most overlap={overlap}, got {', '.join(names)}"
        )
    model_boxes = None
    if frame_id is not None and names and store is not None:
        with db.read() as session:
            dataset_id = get_dataset(session, dataset).id
        model_boxes = _model_boxes(db, store, dataset_id, frame_id, None)
    with db.write() as session:
        ds = get_dataset(session, dataset)
        version = ds.working_version
        if media_id is not None:
            media = session.get(Media, media_id)
            if media is None:
                raise NotFound(f"medium {media_id} does not exist")
            if media.kind != "video":
                raise InvalidInput(f"medium {media_id} is an image: open an image task on its frame")
            in_dataset = session.scalar(
                select(DatasetMedia.id).where(
                    DatasetMedia.dataset_id == ds.id, DatasetMedia.media_id == media_id
                )
            )
            first = session.scalar(
                select(Frame.id).where(Frame.media_id == media_id).order_by(Frame.index).limit(1)
            )
            if in_dataset is None or first is None:
                raise NotFound(f"medium {media_id} is not in dataset {dataset!r}")
            frame_id = int(first)
        else:
            present = session.scalar(
                select(DatasetFrame.id).where(
                    DatasetFrame.dataset_id == ds.id,
                    DatasetFrame.frame_id == frame_id,
                    visible_at(DatasetFrame, version),
                )
            )
            if present is None:
                raise NotFound(f"frame {frame_id} is not in the working copy of {dataset!r}")
        assert frame_id is not None
        task = Task(
            kind="annotate",
            status="open",
            dataset_id=ds.id,
            frame_id=frame_id,
            media_id=media_id,
            overlap=overlap,
            assignee=names[0] if names else None,
        )
        session.add(task)
        session.flush()
        for name in names:
            _new_assignment(session, task, name, model_boxes)
        box_classes, action_classes = _classes(session, task)
        return TaskDetail(
            task_summaries(session, [task])[0], item_info(session, task), box_classes, action_classes
        )


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
        task = annotate_task(session, task_id)
        taken = session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.task_id == task_id)
        )
        fresh = task.media_id is None and not (task.overlap == 1 and taken)
        where = (task.dataset_id, task.frame_id)
    if fresh:
        model_boxes = _model_boxes(db, store, *where, task_id)
    with db.write() as session:
        task = annotate_task(session, task_id, lock=True)
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
            mine = _new_assignment(session, task, annotator, model_boxes)
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
        task = annotate_task(session, row.task_id)
        if task.status != "open":
            raise Conflict(f"task {task.id} is already {task.status}")
        item = item_info(session, task)
        checked = check_fits(draft, item.width, item.height, max(item.frame_count, 1))
        bump_revision(
            session, row, rev, {"draft": checked.model_dump(), "updated_by": author, "status": "open"}
        )
        return assignment_records(session, [row])[0]


def annotation_counts(db: Database) -> dict[str, int]:
    """Assignments per status (for dashboards)."""
    with db.read() as session:
        rows = session.execute(select(Assignment.status, func.count()).group_by(Assignment.status))
        return {status: int(n) for status, n in rows}
