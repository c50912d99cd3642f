"""Annotation throughput: finished tasks and the boxes they wrote, per annotator and UTC day."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from cvcycle.db.engine import Database
from cvcycle.db.models import Task
from cvcycle.feedback.events import as_utc

UNKNOWN_ANNOTATOR = "(unnamed)"


@dataclass(frozen=True)
class ThroughputRow:
    annotator: str
    day: str  # YYYY-MM-DD, UTC
    tasks: int
    labels: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def annotation_throughput(db: Database) -> list[ThroughputRow]:
    """Tasks finished and labels written per annotator per day, by day then annotator."""
    tasks: dict[tuple[str, str], int] = defaultdict(int)
    labels: dict[tuple[str, str], int] = defaultdict(int)
    with db.read() as session:
        rows = session.execute(
            select(Task.done_by, Task.done_at, Task.result).where(
                Task.status == "done", Task.done_at.is_not(None)
            )
        )
        for done_by, done_at, result in rows:
            key = (as_utc(done_at).strftime("%Y-%m-%d"), done_by or UNKNOWN_ANNOTATOR)
            tasks[key] += 1
            written = (result or {}).get("labels")
            labels[key] += len(written) if isinstance(written, list) else 0
    return [ThroughputRow(who, day, tasks[(day, who)], labels[(day, who)]) for day, who in sorted(tasks)]
