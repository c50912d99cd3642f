"""Submitting work, review, overlap agreement and spot checks; accepted work goes into the dataset.

When an annotator submits:

* a task with overlap k > 1 waits for all k assignments, then goes to a reviewer, who sees the
  annotators' agreement (``agreement.py``) and accepts one version or rejects any;
* a task without overlap goes to review when the spot check picks it: a seeded hash of the task
  id against the configured share, so the same tasks are picked on every run and machine;
* anything else is accepted at once.

Accepting writes the draft into the dataset's working copy and closes the task (see
``tasks.accept_assignment``: refused with Conflict if the task's frame changed since the draft
was started). Rejecting reopens the assignment with the reviewer's comment; comments are stored
and returned as plain text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cvcycle.annotate.agreement import Agreement, ClassRange, agreement
from cvcycle.annotate.assignments import bump_revision, check_person_name, locked_assignment, stale_revision
from cvcycle.annotate.documents import Draft
from cvcycle.annotate.records import (
    AssignmentRecord,
    TaskSummary,
    assignment_records,
    load_task,
    task_summaries,
)
from cvcycle.annotate.tasks import accept_assignment
from cvcycle.annotate.tracks import track_boxes
from cvcycle.boxes import Box
from cvcycle.db.engine import Database
from cvcycle.db.models import Assignment, Review, Task
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
        load_task(session, task_id)
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
        task = load_task(session, row.task_id, lock=True)
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
            accept_assignment(session, task, row, author)
        return assignment_records(session, [row])[0]


@dataclass(frozen=True)
class ReviewItem:
    """A task in the review queue; ``agreement`` of its annotators for a task with overlap."""

    task: TaskSummary
    waiting_for: int  # overlap tasks: assignments not yet submitted
    agreement: Agreement | None


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
        task = load_task(session, row.task_id, lock=True)
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
            accept_assignment(session, task, row, reviewer)
        else:
            bump_revision(session, row, row.rev, {"status": "rejected"})
        session.flush()
        return assignment_records(session, [row])[0]
