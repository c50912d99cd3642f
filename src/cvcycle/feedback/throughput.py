"""Annotation throughput: items each annotator finished per UTC day, the labels in them, rejections.

Work done in the annotation tool is counted per submitted assignment (so with overlap every
annotator of an item gets it), on the day it was submitted; its labels are the boxes, action
segments and tracks of the submitted draft, and ``rejected`` counts the submissions a reviewer
sent back. A task finished without the tool (``cvcycle tasks done``) counts for whoever finished it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select

from cvcycle.db.engine import Database
from cvcycle.db.models import Assignment, Task, as_utc

UNKNOWN_ANNOTATOR = "(unnamed)"
DRAFT_PARTS = ("boxes", "segments", "tracks")


@dataclass(frozen=True)
class ThroughputRow:
    annotator: str
    day: str  # YYYY-MM-DD, UTC
    tasks: int  # items finished (submitted assignments, or tasks done without the tool)
    labels: int
    rejected: int


def _draft_labels(draft: Any) -> int:
    if not isinstance(draft, dict):
        return 0
    return sum(len(part) for part in (draft.get(name) for name in DRAFT_PARTS) if isinstance(part, list))


def annotation_throughput(db: Database) -> list[ThroughputRow]:
    """Items finished, labels written and submissions rejected per annotator per day."""
    tasks: dict[tuple[str, str], int] = defaultdict(int)
    labels: dict[tuple[str, str], int] = defaultdict(int)
    rejected: dict[tuple[str, str], int] = defaultdict(int)
    with db.read() as session:
        submitted = session.execute(
            select(Assignment.annotator, Assignment.submitted_at, Assignment.status, Assignment.draft).where(
                Assignment.submitted_at.is_not(None)
            )
        )
        for annotator, submitted_at, status, draft in submitted:
            key = (as_utc(submitted_at).strftime("%Y-%m-%d"), annotator or UNKNOWN_ANNOTATOR)
            tasks[key] += 1
            labels[key] += _draft_labels(draft)
            rejected[key] += status == "rejected"
        finished_elsewhere = session.execute(
            select(Task.done_by, Task.done_at, Task.result).where(
                Task.status == "done",
                Task.done_at.is_not(None),
                ~exists().where(Assignment.task_id == Task.id),
            )
        )
        for done_by, done_at, result in finished_elsewhere:
            key = (as_utc(done_at).strftime("%Y-%m-%d"), done_by or UNKNOWN_ANNOTATOR)
            tasks[key] += 1
            written = (result or {}).get("labels")
            labels[key] += len(written) if isinstance(written, list) else 0
    return [
        ThroughputRow(who, day, tasks[(day, who)], labels[(day, who)], rejected[(day, who)])
        for day, who in sorted(tasks)
    ]
