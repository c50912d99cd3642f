"""Annotation tasks: opening, listing and reading them, and writing finished work into the dataset.

A task is work on one frame (image mode) or one video (video mode) of a dataset's working copy.
Operators' reports open tasks (``open_task``: a frame has at most one open task per dataset, and
further reports on it join that task); ``create_task`` opens one with named annotators and an
overlap (their drafts are ``assignments.py``'s). A task is finished in one of two ways:

* ``complete_task``: labels given directly (``cvcycle tasks done``) become the frame's boxes;
* ``accept_assignment``: an accepted draft (see ``review.py``) becomes the frame's boxes, or in
  video mode the video's action segments plus one box per sampled frame of each track.

Both write a frame through ``data.labels.replace_frame_boxes``, quoting the frame's revision when
the work began (the task's for a direct completion, the draft's for an assignment): if the frame
changed since, for instance because another task on it was accepted, the write is refused with
Conflict and nothing changes, and ``reopen_task`` restarts the task from the frame as it is now.
Only what changed is written, so boxes the annotator left alone keep their key, revision and author.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cvcycle.annotate.assignments import (
    base_revision,
    check_person_name,
    draft_label_key,
    model_boxes_for,
    new_assignment,
    restart_assignment,
)
from cvcycle.annotate.documents import Draft
from cvcycle.annotate.records import (
    TASK_STATUSES,
    TaskDetail,
    TaskSummary,
    load_task,
    task_detail,
    task_summaries,
)
from cvcycle.annotate.tracks import track_boxes
from cvcycle.boxes import XYWH
from cvcycle.data.datasets import get_dataset, lock_dataset
from cvcycle.data.formats.coco import parse_coco
from cvcycle.data.labels import (
    BoxInput,
    FrameBoxes,
    SegmentInput,
    add_boxes,
    add_segments,
    delete_segment,
    frame_revision,
    replace_frame_boxes,
)
from cvcycle.data.versions import visible_at
from cvcycle.db.engine import Database
from cvcycle.db.models import (
    Assignment,
    Dataset,
    DatasetFrame,
    DatasetMedia,
    Frame,
    Label,
    Media,
    Segment,
    Task,
)
from cvcycle.errors import Conflict, InvalidInput, NotFound
from cvcycle.records import to_jsonable
from cvcycle.store import BlobStore

MAX_OVERLAP = 10


# -- opening ----------------------------------------------------------------------------------------


def open_task(session: Session, dataset: Dataset, frame_id: int) -> Task:
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
        task = Task(
            kind="annotate",
            status="open",
            dataset_id=dataset.id,
            frame_id=frame_id,
            base_revision=frame_revision(session, dataset, frame_id),
        )
        session.add(task)
        session.flush()
    return task


def create_task(
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
        model_boxes = model_boxes_for(db, store, dataset_id, frame_id, None)
    with db.write() as session:
        ds = get_dataset(session, dataset)
        if media_id is not None:
            frame_id = _first_frame(session, ds, media_id)
        else:
            present = session.scalar(
                select(DatasetFrame.id).where(
                    DatasetFrame.dataset_id == ds.id,
                    DatasetFrame.frame_id == frame_id,
                    visible_at(DatasetFrame, ds.working_version),
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
        task.base_revision = base_revision(session, task)
        session.add(task)
        session.flush()
        for name in names:
            new_assignment(session, task, name, model_boxes)
        return task_detail(session, task)


def _first_frame(session: Session, dataset: Dataset, media_id: int) -> int:
    """The first frame of a video in the dataset: where a video task points."""
    media = session.get(Media, media_id)
    if media is None:
        raise NotFound(f"medium {media_id} does not exist")
    if media.kind != "video":
        raise InvalidInput(f"medium {media_id} is an image: open an image task on its frame")
    in_dataset = session.scalar(
        select(DatasetMedia.id).where(
            DatasetMedia.dataset_id == dataset.id, DatasetMedia.media_id == media_id
        )
    )
    first = session.scalar(select(Frame.id).where(Frame.media_id == media_id).order_by(Frame.index).limit(1))
    if in_dataset is None or first is None:
        raise NotFound(f"medium {media_id} is not in dataset {dataset.name!r}")
    return int(first)


# -- reading ----------------------------------------------------------------------------------------


def list_tasks(
    db: Database,
    status: str | None = None,
    annotator: str | None = None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[TaskSummary]:
    """Annotate tasks, oldest first unless ``newest_first``: all of them, or those of one status,
    and/or those of ``annotator`` (assigned to them, or holding their assignment)."""
    if status is not None and status not in TASK_STATUSES:
        raise InvalidInput(f"task status {status!r} is not one of {', '.join(TASK_STATUSES)}")
    query = select(Task).where(Task.kind == "annotate")
    query = query.order_by(Task.id.desc() if newest_first else Task.id).limit(limit)
    if status is not None:
        query = query.where(Task.status == status)
    if annotator is not None:
        mine = select(Assignment.task_id).where(Assignment.annotator == annotator)
        query = query.where(or_(Task.assignee == annotator, Task.id.in_(mine)))
    with db.read() as session:
        return task_summaries(session, list(session.scalars(query)))


def get_task(db: Database, task_id: int) -> TaskDetail:
    with db.read() as session:
        return task_detail(session, load_task(session, task_id))


# -- labels given directly --------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpec:
    """A class and a pixel box ``[x, y, w, h]``: a label of a finished task, or the box of a report."""

    cls: str
    box: XYWH


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


# -- finishing --------------------------------------------------------------------------------------


def _check_open(task: Task) -> None:
    if task.status != "open":
        raise Conflict(
            f"task {task.id} is already {task.status}",
            hint="a finished task is not redone; report the frame again to open a new task",
        )


def _locked_dataset(session: Session, task: Task) -> Dataset:
    name = session.scalars(select(Dataset.name).where(Dataset.id == task.dataset_id)).one()
    return lock_dataset(session, name)


def _write_frame(
    session: Session,
    task: Task,
    dataset: Dataset,
    boxes: Sequence[BoxInput],
    author: str | None,
    base: str | None,
    keys: Sequence[int | None] = (),
) -> FrameBoxes:
    """Write the task's frame, refusing it if the frame moved past ``base`` (unchecked when None:
    work started before revisions were recorded)."""
    expected = base or frame_revision(session, dataset, task.frame_id)
    try:
        return replace_frame_boxes(session, dataset.name, task.frame_id, boxes, author, expected, keys=keys)
    except Conflict as exc:
        raise Conflict(
            f"task {task.id}: {exc.message}",
            hint=f"nothing was written; reopen the task to redo it on the frame's current boxes: "
            f"`cvcycle tasks reopen {task.id}` or POST /api/tasks/{task.id}/reopen",
        ) from None


def _close(task: Task, by: str | None, result: dict[str, Any]) -> None:
    task.status = "done"
    task.done_at = datetime.now(UTC)
    task.done_by = by
    task.result = result


def complete_task(
    db: Database,
    task_id: int,
    labels: Sequence[dict[str, Any] | LabelSpec] | Path,
    operator: str = "",
) -> TaskSummary:
    """Make ``labels`` the boxes of the task's frame in the working copy and mark the task done.

    ``labels`` is a list of ``{"cls", "box": [x, y, w, h]}`` (an empty list says the frame holds
    nothing) or a path to a JSON file (see ``parse_labels``). All or nothing: a bad label leaves
    the working copy and the task as they were. A task that is not open, or whose frame changed
    since the task was opened, raises Conflict.
    """
    if isinstance(labels, Path):
        specs = read_labels_file(labels)
    else:
        specs = [
            s if isinstance(s, LabelSpec) else _label_from_item(s, f"label {i}") for i, s in enumerate(labels)
        ]
    with db.write() as session:
        task = load_task(session, task_id, lock=True)
        _check_open(task)
        # Taking the lock first: the working version cannot move under the reads below.
        dataset = _locked_dataset(session, task)
        boxes = [BoxInput(task.frame_id, s.cls, *s.box, source="human") for s in specs]
        written = _write_frame(session, task, dataset, boxes, operator or None, task.base_revision)
        _close(
            task,
            operator or None,
            {
                "labels": to_jsonable(specs),
                **written.to_json(),
                "replaced": written.edited + written.deleted,
            },
        )
        session.flush()
        return task_summaries(session, [task])[0]


def accept_assignment(session: Session, task: Task, row: Assignment, by: str) -> None:
    """Write the assignment's draft into the working copy and close the task (in the caller's
    transaction, with the task and the assignment locked)."""
    draft = Draft.model_validate(row.draft)
    dataset = _locked_dataset(session, task)
    author = row.updated_by or row.annotator
    if task.media_id is None:
        boxes = [
            BoxInput(
                task.frame_id,
                b.cls,
                *b.box.xywh(),
                score=b.score if b.source == "pseudo" else None,
                source=b.source,
            )
            for b in draft.boxes
        ]
        keys = [draft_label_key(b.id) for b in draft.boxes]
        written = _write_frame(session, task, dataset, boxes, author, row.base_revision, keys)
        result = {
            **written.to_json(),
            "boxes": len(written.keys),
            "replaced": written.edited + written.deleted,
        }
    else:
        result = _write_video(session, dataset, task.media_id, draft, author)
    row.status = "accepted"
    _close(task, author, {"assignment_id": row.id, "accepted_by": by, **result})
    session.flush()


def _write_video(
    session: Session, dataset: Dataset, media_id: int, draft: Draft, author: str
) -> dict[str, Any]:
    version = dataset.working_version
    current = session.execute(
        select(Segment.key, Segment.rev).where(
            Segment.dataset_id == dataset.id, Segment.media_id == media_id, visible_at(Segment, version)
        )
    ).all()
    for key, rev in current:
        delete_segment(session, dataset.name, int(key), int(rev))
    add_segments(
        session,
        dataset.name,
        [SegmentInput(media_id, s.cls, s.start, s.end, source=s.source) for s in draft.segments],
        author=author,
    )
    # Tracks become boxes on the frames the dataset holds (the sampled ones), with fresh track ids.
    frames = dict(
        session.execute(
            select(Frame.index, Frame.id)
            .join(DatasetFrame, DatasetFrame.frame_id == Frame.id)
            .where(
                Frame.media_id == media_id,
                DatasetFrame.dataset_id == dataset.id,
                visible_at(DatasetFrame, version),
            )
        ).all()
    )
    first_track = 1 + int(
        session.scalar(
            select(func.max(Label.track_id))
            .join(Frame, Frame.id == Label.frame_id)
            .where(Label.dataset_id == dataset.id, Frame.media_id == media_id)
        )
        or 0
    )
    boxes = []
    for n, track in enumerate(draft.tracks):
        keyframes = {k.frame for k in track.keyframes}
        for index, box in track_boxes(track.keyframe_values(), frames).items():
            boxes.append(
                BoxInput(
                    frames[index],
                    track.cls,
                    *box,
                    track_id=first_track + n,
                    attributes={"keyframe": index in keyframes, "track": track.id},
                )
            )
    add_boxes(session, dataset.name, boxes, author=author)
    return {"segments": len(draft.segments), "replaced_segments": len(current), "track_boxes": len(boxes)}


def reopen_task(db: Database, task_id: int, by: str) -> TaskSummary:
    """Restart an open task from its frame as it is now, so that work refused on a changed frame can
    be redone: the task and every assignment of it take the frame's current revision, and each draft
    starts again from the working copy (a new draft revision: an editor still open on the old one is
    told so on its next save and shown both versions)."""
    by = check_person_name(by, "by")
    with db.write() as session:
        task = load_task(session, task_id, lock=True)
        _check_open(task)
        _locked_dataset(session, task)  # the frame cannot change while the drafts are rebuilt
        task.base_revision = base_revision(session, task)
        for row in session.scalars(
            select(Assignment).where(Assignment.task_id == task.id).order_by(Assignment.id).with_for_update()
        ):
            restart_assignment(session, task, row, by)
        session.flush()
        return task_summaries(session, [task])[0]
