"""Annotation tasks opened by operators' reports: opening, listing, and completing them.

A task is work on one frame of one dataset's working copy. Completing it replaces that frame's
boxes in the working copy by the set the annotator gave (old boxes are closed at their current
revision, new ones added with source ``human`` and the annotator as author), so the next commit
of the dataset carries the correction. A frame has at most one open annotate task per dataset:
further reports on it join that task, since the annotator labels the whole frame anyway.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import lock_dataset
from cvcycle.data.formats.coco import parse_coco
from cvcycle.data.labels import BoxInput, add_boxes, delete_box
from cvcycle.data.versions import visible_at
from cvcycle.db.engine import Database
from cvcycle.db.models import Dataset, Label, Report, Task, as_utc
from cvcycle.errors import Conflict, InvalidInput, NotFound

TASK_KINDS = ("annotate", "review")
TASK_STATUSES = ("open", "done", "cancelled")


@dataclass(frozen=True)
class LabelSpec:
    """One box of a finished task: class and pixel ``[x, y, w, h]``."""

    cls: str
    box: tuple[float, float, float, float]

    def to_json(self) -> dict[str, Any]:
        return {"cls": self.cls, "box": list(self.box)}


@dataclass(frozen=True)
class TaskRecord:
    id: int
    kind: str
    status: str
    dataset: str
    frame_id: int
    event_ids: list[int]
    report_ids: list[int]
    report_types: list[str]
    assignee: str | None
    created_at: datetime
    done_at: datetime | None
    done_by: str | None
    result: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "dataset": self.dataset,
            "frame_id": self.frame_id,
            "event_ids": self.event_ids,
            "report_ids": self.report_ids,
            "report_types": self.report_types,
            "assignee": self.assignee,
            "created_at": self.created_at.isoformat(),
            "done_at": self.done_at.isoformat() if self.done_at else None,
            "done_by": self.done_by,
            "result": self.result,
        }


def open_annotation_task(session: Session, dataset: Dataset, frame_id: int) -> Task:
    """The open annotate task of the frame in the dataset, created if there is none."""
    task = session.scalar(
        select(Task)
        .where(
            Task.dataset_id == dataset.id,
            Task.frame_id == frame_id,
            Task.kind == "annotate",
            Task.status == "open",
        )
        .order_by(Task.id)
        .limit(1)
    )
    if task is None:
        task = Task(kind="annotate", status="open", dataset_id=dataset.id, frame_id=frame_id)
        session.add(task)
        session.flush()
    return task


def _records(session: Session, tasks: Sequence[Task]) -> list[TaskRecord]:
    ids = [t.id for t in tasks]
    reports: dict[int, list[tuple[int, int | None, str]]] = {i: [] for i in ids}
    names = dict(
        session.execute(
            select(Dataset.id, Dataset.name).where(Dataset.id.in_({t.dataset_id for t in tasks}))
        ).all()
    )
    if ids:
        for rid, task_id, event_id, kind in session.execute(
            select(Report.id, Report.task_id, Report.event_id, Report.type)
            .where(Report.task_id.in_(ids))
            .order_by(Report.id)
        ):
            if task_id is not None:
                reports[task_id].append((int(rid), event_id, kind))
    return [
        TaskRecord(
            id=t.id,
            kind=t.kind,
            status=t.status,
            dataset=names[t.dataset_id],
            frame_id=t.frame_id,
            event_ids=sorted({int(e) for _, e, _ in reports[t.id] if e is not None}),
            report_ids=[r for r, _, _ in reports[t.id]],
            report_types=[k for _, _, k in reports[t.id]],
            assignee=t.assignee,
            created_at=as_utc(t.created_at),
            done_at=as_utc(t.done_at) if t.done_at else None,
            done_by=t.done_by,
            result=t.result,
        )
        for t in tasks
    ]


def list_tasks(db: Database, status: str | None = None, assignee: str | None = None) -> list[TaskRecord]:
    """Tasks, oldest first, optionally of one status and/or one assignee."""
    if status is not None and status not in TASK_STATUSES:
        raise InvalidInput(f"task status {status!r} is not one of {', '.join(TASK_STATUSES)}")
    query = select(Task).order_by(Task.id)
    if status is not None:
        query = query.where(Task.status == status)
    if assignee is not None:
        query = query.where(Task.assignee == assignee)
    with db.read() as session:
        return _records(session, list(session.scalars(query)))


def get_task(db: Database, task_id: int) -> TaskRecord:
    with db.read() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise _task_not_found(task_id)
        return _records(session, [task])[0]


def _task_not_found(task_id: int) -> NotFound:
    return NotFound(f"task {task_id} does not exist", hint="see the open tasks with `cvcycle tasks list`")


# -- labels given by the annotator ------------------------------------------------------------------


def _label_from_item(item: Any, where: str) -> LabelSpec:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: a label must be an object with cls and box, got {item!r}")
    cls, box = item.get("cls"), item.get("box")
    if not isinstance(cls, str) or not cls:
        raise InvalidInput(f"{where}: cls must be a non-empty class name, got {cls!r}")
    if (
        not isinstance(box, list | tuple)
        or len(box) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise InvalidInput(f"{where}: box must be [x, y, w, h] numbers, got {box!r}")
    x, y, w, h = (float(v) for v in box)
    return LabelSpec(cls, (x, y, w, h))


def parse_labels(data: Any, source: str = "labels") -> list[LabelSpec]:
    """Labels from JSON data: ``[{"cls", "box"}]``, ``{"labels": [...]}``, or a one-image COCO document."""
    if isinstance(data, dict) and "annotations" in data:
        doc = parse_coco(json.dumps(data), source)
        if len({a.image_id for a in doc.annotations}) > 1 or len(doc.images) > 1:
            raise InvalidInput(
                f"{source}: a COCO file for one task must hold one image, it has {len(doc.images)}"
            )
        names = {c.id: c.name for c in doc.categories}
        out = []
        for a in doc.annotations:
            if a.category_id not in names:
                raise InvalidInput(f"{source}: annotation {a.id} has unknown category_id {a.category_id}")
            out.append(LabelSpec(names[a.category_id], tuple(float(v) for v in a.bbox)))  # type: ignore[arg-type]
        return out
    if isinstance(data, dict) and "labels" in data:
        data = data["labels"]
    if not isinstance(data, list):
        raise InvalidInput(
            f"{source}: expected a list of {{'cls', 'box'}}, {{'labels': [...]}} or a COCO document"
        )
    return [_label_from_item(item, f"{source}: label {i}") for i, item in enumerate(data)]


def read_labels_file(path: Path) -> list[LabelSpec]:
    if not path.is_file():
        raise NotFound(f"labels file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not valid JSON: {exc}") from None
    return parse_labels(data, str(path))


# -- completing -------------------------------------------------------------------------------------


def complete_task(
    db: Database,
    task_id: int,
    labels: Sequence[dict[str, Any] | LabelSpec] | Path,
    operator: str = "",
) -> TaskRecord:
    """Replace the task frame's boxes in the working copy by ``labels`` and mark the task done.

    ``labels`` is a list of ``{"cls", "box": [x, y, w, h]}`` (an empty list says the frame holds
    nothing) or a path to a JSON file (see ``parse_labels``). All or nothing: a bad label leaves
    the working copy and the task as they were. A task that is not open raises Conflict.
    """
    if isinstance(labels, Path):
        specs = read_labels_file(labels)
    else:
        specs = [
            s if isinstance(s, LabelSpec) else _label_from_item(s, f"label {i}") for i, s in enumerate(labels)
        ]
    with db.write() as session:
        task = session.scalar(select(Task).where(Task.id == task_id).with_for_update())
        if task is None:
            raise _task_not_found(task_id)
        if task.status != "open":
            raise Conflict(
                f"task {task_id} is already {task.status}",
                hint="a finished task is not redone; report the frame again to open a new task",
            )
        name = session.scalars(select(Dataset.name).where(Dataset.id == task.dataset_id)).one()
        # Taking the lock first: the working version cannot move under the reads below.
        dataset = lock_dataset(session, name)
        current = session.execute(
            select(Label.key, Label.rev).where(
                Label.dataset_id == dataset.id,
                Label.frame_id == task.frame_id,
                visible_at(Label, dataset.working_version),
            )
        ).all()
        for key, rev in current:
            delete_box(session, name, int(key), int(rev))
        keys = add_boxes(
            session,
            name,
            [BoxInput(task.frame_id, s.cls, *s.box, source="human") for s in specs],
            author=operator or None,
        )
        task.status = "done"
        task.done_at = datetime.now(UTC)
        task.done_by = operator or None
        task.result = {
            "labels": [s.to_json() for s in specs],
            "keys": keys,
            "replaced": len(current),
        }
        session.flush()
        return _records(session, [task])[0]
