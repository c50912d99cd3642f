"""Submitting work, review, overlap agreement and spot checks; accepted work goes into the dataset.

When an annotator submits:

* a task with overlap k > 1 waits for all k assignments, then goes to a reviewer, who sees the
  annotators' agreement (``agreement.py``) and accepts one version or rejects any;
* a task without overlap goes to review when the spot check picks it: a seeded hash of the task
  id against the configured share, so the same tasks are picked on every run and machine;
* anything else is accepted at once.

Accepting writes the draft into the dataset's working copy, replacing what the item had (boxes of
the frame in image mode; the video's action segments in video mode, plus one box per sampled
frame of each track, interpolated between keyframes), and closes the task. Rejecting reopens the
assignment with the reviewer's comment; comments are stored and returned as plain text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cvcycle.annotate.agreement import Agreement, ClassRange, agreement
from cvcycle.annotate.assignments import (
    AssignmentRecord,
    TaskSummary,
    annotate_task,
    assignment_records,
    bump_revision,
    check_person_name,
    locked_assignment,
    stale_revision,
    task_summaries,
)
from cvcycle.annotate.documents import Draft
from cvcycle.annotate.tracks import track_boxes
from cvcycle.boxes import Box
from cvcycle.data.datasets import lock_dataset
from cvcycle.data.labels import BoxInput, SegmentInput, add_boxes, add_segments, delete_box, delete_segment
from cvcycle.data.versions import visible_at
from cvcycle.db.engine import Database
from cvcycle.db.models import Assignment, Dataset, DatasetFrame, Frame, Label, Review, Segment, Task
from cvcycle.errors import Conflict, InvalidInput

VERDICTS = ("accept", "reject")
MAX_COMMENT = 5_000


@dataclass(frozen=True)
class SpotCheck:
    """Which share of finished single-annotator tasks a reviewer sees, and the seed of the draw."""

    share: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise InvalidInput(f"spot-check share must be from 0 to 1, got {self.share}")

    def picks(self, task_id: int) -> bool:
        """Whether task ``task_id`` is spot-checked: a stable uniform draw in [0, 1) below ``share``."""
        digest = hashlib.sha256(f"cvcycle-spot-check:{self.seed}:{task_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.share


def draft_work(annotated: list[tuple[str, Draft]]) -> list[tuple[str, list[Box], list[ClassRange]]]:
    """What agreement compares for each annotator: boxes, tracks as boxes, action segments.

    Tracks are compared frame by frame on every frame where any annotator placed a keyframe
    (interpolated where an annotator had none), so two annotators who follow the same object
    with different keyframes still agree. A track box only matches a box on the same frame.
    """
    frames = sorted({k.frame for _, d in annotated for t in d.tracks for k in t.keyframes})
    out = []
    for name, d in annotated:
        tracks = [
            Box(f"{t.cls}@{frame}", *box)
            for t in d.tracks
            for frame, box in track_boxes(t.keyframe_values(), frames).items()
        ]
        out.append((name, d.class_boxes() + tracks, d.class_ranges()))
    return out


def _agreement(session: Session, task_id: int) -> Agreement:
    rows = list(
        session.scalars(
            select(Assignment)
            .where(Assignment.task_id == task_id, Assignment.status.in_(("submitted", "accepted")))
            .order_by(Assignment.id)
        )
    )
    return agreement(draft_work([(a.annotator, Draft.model_validate(a.draft)) for a in rows]))


def task_agreement(db: Database, task_id: int) -> Agreement:
    """Mean pairwise agreement of the task's submitted assignments (None scores below two)."""
    with db.read() as session:
        annotate_task(session, task_id)
        return _agreement(session, task_id)


def submit_assignment(
    db: Database, assignment_id: int, rev: int, author: str, spot_check: SpotCheck | None = None
) -> AssignmentRecord:
    """Hand in the draft at revision ``rev``: accepted at once, or queued for review (see module doc)."""
    author = check_person_name(author, "author")
    spot_check = spot_check or SpotCheck()
    with db.write() as session:
        row = locked_assignment(session, assignment_id)
        if row.rev != rev:
            raise stale_revision(row, rev)
        if row.status in ("submitted", "accepted"):
            raise Conflict(f"assignment {assignment_id} is already {row.status}")
        task = annotate_task(session, row.task_id, lock=True)
        if task.status != "open":
            raise Conflict(f"task {task.id} is already {task.status}")
        if task.overlap > 1:
            reason: str | None = "overlap"
        elif spot_check.picks(task.id) or row.review_reason == "spot_check":
            reason = "spot_check"  # a rejected spot check goes back to the reviewer
        else:
            reason = None
        bump_revision(
            session,
            row,
            rev,
            {
                "status": "submitted",
                "submitted_at": datetime.now(UTC),
                "review_reason": reason,
                "updated_by": author,
            },
        )
        if reason is None:
            _accept(session, task, row, author)
        return assignment_records(session, [row])[0]


@dataclass(frozen=True)
class ReviewItem:
    task: TaskSummary
    waiting_for: int  # overlap tasks: assignments not yet submitted
    agreement: Agreement | None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "waiting_for": self.waiting_for,
            "agreement": self.agreement.to_json() if self.agreement else None,
        }


def review_queue(db: Database, limit: int = 200) -> list[ReviewItem]:
    """Open tasks with submitted work waiting for a reviewer, oldest submission first."""
    with db.read() as session:
        submitted = (
            select(Assignment.task_id, func.min(Assignment.submitted_at).label("first"))
            .where(Assignment.status == "submitted", Assignment.review_reason.is_not(None))
            .group_by(Assignment.task_id)
            .subquery()
        )
        tasks = list(
            session.scalars(
                select(Task)
                .join(submitted, submitted.c.task_id == Task.id)
                .where(Task.status == "open")
                .order_by(submitted.c.first, Task.id)
                .limit(limit)
            )
        )
        out = []
        for summary in task_summaries(session, tasks):
            done = sum(a.status == "submitted" for a in summary.assignments)
            waiting = max(0, summary.overlap - done) if summary.overlap > 1 else 0
            agreement_ = _agreement(session, summary.id) if summary.overlap > 1 else None
            out.append(ReviewItem(summary, waiting, agreement_))
        return out


def review_assignment(
    db: Database, assignment_id: int, verdict: str, reviewer: str, comment: str = ""
) -> AssignmentRecord:
    """Accept (the draft goes into the dataset, the task closes) or reject (back to the annotator)."""
    reviewer = check_person_name(reviewer, "reviewer")
    if verdict not in VERDICTS:
        raise InvalidInput(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"comment is {len(comment)} characters, at most {MAX_COMMENT} are kept")
    if verdict == "reject" and not comment.strip():
        raise InvalidInput("comment: a rejection needs a comment that tells the annotator what to fix")
    with db.write() as session:
        row = locked_assignment(session, assignment_id)
        if row.status != "submitted":
            raise Conflict(
                f"assignment {assignment_id} is {row.status}, only submitted work is reviewed",
                hint="wait until the annotator submits it",
            )
        task = annotate_task(session, row.task_id, lock=True)
        if task.status != "open":
            raise Conflict(f"task {task.id} is already {task.status}")
        if verdict == "accept" and task.overlap > 1:
            pending = session.scalar(
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.task_id == task.id, Assignment.status == "submitted")
            )
            if int(pending or 0) < task.overlap:
                raise Conflict(
                    f"task {task.id} has {pending} of its {task.overlap} annotations submitted",
                    hint="accept once all annotators have submitted, so their agreement is known",
                )
        session.add(Review(assignment_id=row.id, reviewer=reviewer, verdict=verdict, comment=comment))
        if verdict == "accept":
            _accept(session, task, row, reviewer)
        else:
            bump_revision(session, row, row.rev, {"status": "rejected"})
        session.flush()
        return assignment_records(session, [row])[0]


# -- writing accepted work into the working copy ----------------------------------------------------


def _accept(session: Session, task: Task, row: Assignment, by: str) -> None:
    draft = Draft.model_validate(row.draft)
    name = session.scalars(select(Dataset.name).where(Dataset.id == task.dataset_id)).one()
    dataset = lock_dataset(session, name)
    author = row.updated_by or row.annotator
    if task.media_id is None:
        written = _write_frame_boxes(session, dataset, task.frame_id, draft, author)
    else:
        written = _write_video(session, dataset, task.media_id, draft, author)
    row.status = "accepted"
    task.status = "done"
    task.done_at = datetime.now(UTC)
    task.done_by = author
    task.result = {"assignment_id": row.id, "accepted_by": by, **written}
    session.flush()


def _write_frame_boxes(
    session: Session, dataset: Dataset, frame_id: int, draft: Draft, author: str
) -> dict[str, Any]:
    current = session.execute(
        select(Label.key, Label.rev).where(
            Label.dataset_id == dataset.id,
            Label.frame_id == frame_id,
            visible_at(Label, dataset.working_version),
        )
    ).all()
    for key, rev in current:
        delete_box(session, dataset.name, int(key), int(rev))
    boxes = [
        BoxInput(
            frame_id,
            b.cls,
            *b.box.xywh(),
            score=b.score if b.source == "pseudo" else None,
            source=b.source,
        )
        for b in draft.boxes
    ]
    keys = add_boxes(session, dataset.name, boxes, author=author)
    return {"boxes": len(keys), "replaced": len(current)}


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
