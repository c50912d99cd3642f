"""Read models of annotation work: tasks, their items, assignments and reviews, and the lookups behind them.

One ``TaskSummary`` serves every shell: ``cvcycle tasks list`` and ``GET /api/tasks`` show the same
record, with the reports and events that opened the task and the assignments working on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from cvcycle.db.models import (
    Assignment,
    Dataset,
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
from cvcycle.errors import NotFound
from cvcycle.registry.versions import PRODUCTION

TASK_STATUSES = ("open", "done", "cancelled")


def task_not_found(task_id: int) -> NotFound:
    return NotFound(
        f"task {task_id} does not exist",
        hint="see the tasks with `cvcycle tasks list` (or GET /api/tasks)",
    )


def load_task(session: Session, task_id: int, *, lock: bool = False) -> Task:
    """The annotate task ``task_id`` (locked for this transaction with ``lock``); NotFound if none."""
    query = select(Task).where(Task.id == task_id)
    if lock:
        query = query.with_for_update()
    task = session.scalar(query)
    if task is None or task.kind != "annotate":
        raise task_not_found(task_id)
    return task


@dataclass(frozen=True)
class ReviewRecord:
    reviewer: str
    verdict: str
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class AssignmentSummary:
    """An annotator's assignment on a task, without its draft (as a task lists its assignments)."""

    id: int
    task_id: int
    annotator: str
    status: str
    rev: int
    review_reason: str | None
    updated_at: datetime
    updated_by: str | None
    submitted_at: datetime | None
    reviews: list[ReviewRecord]


@dataclass(frozen=True)
class AssignmentRecord(AssignmentSummary):
    """An assignment with its draft (a ``documents.Draft`` as stored)."""

    draft: dict[str, Any]

    def summary(self) -> AssignmentSummary:
        return AssignmentSummary(**{f.name: getattr(self, f.name) for f in fields(AssignmentSummary)})


@dataclass(frozen=True)
class ItemInfo:
    """What the task is about: one frame (image mode) or one whole video (video mode).

    ``frame_url`` is the template of the URL of a frame of the medium (``{index}`` in it).
    """

    mode: str  # image | video
    media_id: int
    frame_id: int
    frame_index: int
    width: int
    height: int
    fps: float | None
    frame_count: int
    file_name: str
    frame_url: str


@dataclass(frozen=True)
class TaskSummary:
    id: int
    kind: str
    status: str
    dataset: str
    mode: str
    frame_id: int
    media_id: int | None
    overlap: int
    assignee: str | None
    created_at: datetime
    done_at: datetime | None
    done_by: str | None
    event_ids: list[int]
    report_ids: list[int]
    report_types: list[str]
    base_revision: str | None
    result: dict[str, Any] | None
    assignments: list[AssignmentSummary]


@dataclass(frozen=True)
class TaskClasses:
    """The classes offered for a task: for boxes and for action segments."""

    boxes: list[str]
    actions: list[str]


@dataclass(frozen=True)
class TaskDetail(TaskSummary):
    """A task with its item and the classes offered for it."""

    item: ItemInfo
    classes: TaskClasses


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
            a.review_reason,
            as_utc(a.updated_at),
            a.updated_by,
            as_utc(a.submitted_at) if a.submitted_at else None,
            reviews[a.id],
            a.draft,
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
    reports: dict[int, list[tuple[int, int | None, str]]] = defaultdict(list)
    if ids:
        for a in session.scalars(
            select(Assignment).where(Assignment.task_id.in_(ids)).order_by(Assignment.id)
        ):
            by_task[a.task_id].append(a)
        for report_id, task_id, event_id, kind in session.execute(
            select(Report.id, Report.task_id, Report.event_id, Report.type)
            .where(Report.task_id.in_(ids))
            .order_by(Report.id)
        ):
            reports[int(task_id or 0)].append((int(report_id), event_id, kind))
    records = {r.id: r for r in assignment_records(session, [a for t in tasks for a in by_task[t.id]])}
    return [
        TaskSummary(
            id=t.id,
            kind=t.kind,
            status=t.status,
            dataset=names[t.dataset_id],
            mode="video" if t.media_id is not None else "image",
            frame_id=t.frame_id,
            media_id=t.media_id,
            overlap=t.overlap,
            assignee=t.assignee,
            created_at=as_utc(t.created_at),
            done_at=as_utc(t.done_at) if t.done_at else None,
            done_by=t.done_by,
            event_ids=sorted({int(e) for _, e, _ in reports[t.id] if e is not None}),
            report_ids=[r for r, _, _ in reports[t.id]],
            report_types=[k for _, _, k in reports[t.id]],
            base_revision=t.base_revision,
            result=t.result,
            assignments=[records[a.id].summary() for a in by_task[t.id]],
        )
        for t in tasks
    ]


def item_info(session: Session, task: Task) -> ItemInfo:
    frame = session.get(Frame, task.frame_id)
    if frame is None:
        raise NotFound(f"the frame of task {task.id} no longer exists")
    media = session.get(Media, frame.media_id)
    assert media is not None
    frame_url = f"/api/media/{media.id}/frames/{{index}}.jpg"
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
            frame_url,
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
        frame_url,
    )


def _classes(session: Session, task: Task) -> TaskClasses:
    """Classes for the pickers: the production model's first, in its order (its class 0 is the
    usual default), then those the dataset and the task's events use, sorted."""
    model: list[str] = []
    for names in session.scalars(
        select(ModelVersion.classes)
        .join(
            ModelAlias, and_(ModelAlias.name == ModelVersion.name, ModelAlias.version == ModelVersion.version)
        )
        .where(ModelAlias.alias == PRODUCTION)
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
    return TaskClasses(box_classes or ["object"], sorted(actions) or ["action"])


def task_detail(session: Session, task: Task) -> TaskDetail:
    """The task with its item and the classes offered for it (what the annotation screen opens with)."""
    summary = task_summaries(session, [task])[0]
    return TaskDetail(**vars(summary), item=item_info(session, task), classes=_classes(session, task))
