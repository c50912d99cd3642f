"""The loop's timeline: dataset versions, training runs, gate reports and deployments, in time order.

A deployment is a move of a model alias (``production`` and the like): the registry records each
move with its time and reason. A gate report carries no time of its own; it is placed when its
candidate's training run finished (the gate runs after that), or when the version was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import select

from cvcycle.db.engine import Database
from cvcycle.db.models import AliasChange, Dataset, DatasetVersion, ModelVersion, Run, as_utc
from cvcycle.refs import format_ref

TimelineKind = Literal["dataset_version", "run", "gate", "deployment"]
TIMELINE_KINDS: tuple[TimelineKind, ...] = get_args(TimelineKind)


@dataclass(frozen=True)
class TimelineItem:
    """One step of the loop: when (UTC), which kind, a one-line title, and the kind's own details."""

    time: datetime
    kind: TimelineKind
    title: str
    detail: dict[str, Any]


def _dataset_versions(session: Any) -> list[TimelineItem]:
    rows = session.execute(
        select(Dataset.name, DatasetVersion).join(Dataset, Dataset.id == DatasetVersion.dataset_id)
    )
    return [
        TimelineItem(
            as_utc(v.created_at),
            "dataset_version",
            f"{format_ref(name, v.number)} committed",
            {
                "dataset": name,
                "version": v.number,
                "message": v.message,
                "author": v.author,
                "frames": (v.stats.get("totals") or {}).get("frames"),
                "labels": (v.stats.get("totals") or {}).get("labels"),
            },
        )
        for name, v in rows
    ]


def _runs(session: Any) -> list[TimelineItem]:
    names = dict(session.execute(select(Dataset.id, Dataset.name)).all())
    # Only the columns shown: a run row also holds its whole environment (the package list).
    rows = session.execute(
        select(
            Run.id,
            Run.created_at,
            Run.model_name,
            Run.dataset_id,
            Run.dataset_version,
            Run.status,
            Run.metrics,
        )
    )
    return [
        TimelineItem(
            as_utc(created_at),
            "run",
            f"run {run_id}: {model} on {format_ref(str(names.get(dataset_id, dataset_id)), dataset_version)}",
            {"run_id": run_id, "status": status, "model": model, "metrics": metrics},
        )
        for run_id, created_at, model, dataset_id, dataset_version, status, metrics in rows
    ]


def _gates(session: Any) -> list[TimelineItem]:
    items = []
    rows = session.execute(
        select(
            ModelVersion.name,
            ModelVersion.version,
            ModelVersion.created_at,
            ModelVersion.gate_report,
            Run.finished_at,
        )
        .outerjoin(Run, Run.id == ModelVersion.run_id)
        .where(ModelVersion.gate_report.is_not(None))
    )
    for name, number, created_at, report, finished_at in rows:
        if not report:  # a JSON null is not an SQL NULL: the filter above lets it through
            continue
        old = (report.get("models") or {}).get("old", "?")
        verdict = report.get("verdict", "?")
        items.append(
            TimelineItem(
                as_utc(finished_at or created_at),
                "gate",
                f"gate {format_ref(name, number)} vs {old}: {verdict}",
                {
                    "model": name,
                    "version": number,
                    "verdict": verdict,
                    "reasons": report.get("reasons", []),
                },
            )
        )
    return items


def _deployments(session: Any) -> list[TimelineItem]:
    return [
        TimelineItem(
            as_utc(c.changed_at),
            "deployment",
            f"{c.name}:{c.alias} -> {c.new_version}" + (f" (was {c.old_version})" if c.old_version else ""),
            {
                "model": c.name,
                "alias": c.alias,
                "old_version": c.old_version,
                "new_version": c.new_version,
                "reason": c.reason,
            },
        )
        for c in session.scalars(select(AliasChange))
    ]


def loop_timeline(db: Database) -> list[TimelineItem]:
    """Every step of the loop on record, oldest first."""
    with db.read() as session:
        items = _dataset_versions(session) + _runs(session) + _gates(session) + _deployments(session)
    order = {kind: i for i, kind in enumerate(TIMELINE_KINDS)}
    return sorted(items, key=lambda item: (item.time, order[item.kind]))
