"""Feedback statistics: what operators found, per model version, source and day.

Counts per group (the day is the UTC calendar day of the event's time):

* ``events``: events the model emitted; ``detections``: detections in them;
  ``sampled``: events drawn for missed-detection review;
* ``frames_reviewed``: events with at least one report of any type;
* ``confirmed``: detections operators confirmed: a confirmed report naming a detection counts
  one, a confirmed report without an index counts all of the event's detections (none on an
  empty frame, where it confirms that nothing was missed);
* ``false_detection``, ``inaccurate_detection``, ``missed_detection``: reports of that type;
* ``detections_reviewed`` = confirmed + false_detection + inaccurate_detection.

Rates (None when the denominator is 0):

* ``false_rate`` = false_detection / detections_reviewed: the share of reviewed detections that
  were not objects at all (an estimate of 1 - precision on what operators looked at);
* ``inaccurate_rate`` = inaccurate_detection / detections_reviewed;
* ``missed_rate`` = missed_detection / frames_reviewed: objects the model missed per reviewed
  frame (it can exceed 1 when frames hold several missed objects). Compare it between versions
  on the same review process: frames drawn by ``sample_review_frames`` count the same way as
  frames reviewed because of a detection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from cvcycle.db.engine import Database
from cvcycle.db.models import Event, Report, ReviewSample
from cvcycle.errors import InvalidInput
from cvcycle.feedback.events import of_model
from cvcycle.refs import ModelRef, format_ref

GROUP_KEYS = ("model_name", "model_version", "source", "day")
DEFAULT_GROUP_BY = ("model_version", "source", "day")


@dataclass(frozen=True)
class StatsRow:
    model_name: str | None
    model_version: int | None
    source: str | None
    day: str | None  # YYYY-MM-DD, UTC
    events: int
    detections: int
    sampled: int
    frames_reviewed: int
    confirmed: int
    false_detection: int
    inaccurate_detection: int
    missed_detection: int
    detections_reviewed: int
    false_rate: float | None
    inaccurate_rate: float | None
    missed_rate: float | None

    @property
    def model(self) -> str | None:
        if self.model_name is None:
            return None
        return format_ref(self.model_name, self.model_version)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_group_by(text: str) -> tuple[str, ...]:
    """The keys of a comma-separated grouping (``model_version,day``); blank text groups nothing.

    ``feedback_stats`` checks the keys themselves.
    """
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    if not keys and text.strip():
        raise InvalidInput(f"grouping {text!r} names no key", hint=f"use {', '.join(GROUP_KEYS)}")
    return keys


def _day(session: Session) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Event.time), "YYYY-MM-DD")
    # SQLite holds the UTC wall time as text ("2026-11-25 07:00:00.000000").
    return func.strftime("%Y-%m-%d", Event.time)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def feedback_stats(
    db: Database, group_by: Sequence[str] = DEFAULT_GROUP_BY, *, model: str | ModelRef | None = None
) -> list[StatsRow]:
    """Counts and rates per group; grouping by model_version also groups by model_name.

    ``model`` keeps the events of one model: of every version of ``detector``, or of the one
    version ``detector@2``, ``detector@latest`` or ``detector:production`` names now.
    """
    unknown = [k for k in group_by if k not in GROUP_KEYS]
    if unknown:
        raise InvalidInput(
            f"cannot group feedback by {', '.join(map(repr, unknown))}", hint=f"use {', '.join(GROUP_KEYS)}"
        )
    keys = set(group_by)
    if "model_version" in keys:
        keys.add("model_name")
    with db.read() as session:
        columns: dict[str, Any] = {
            "model_name": Event.model_name,
            "model_version": Event.model_version,
            "source": Event.source,
            "day": _day(session),
        }
        group = [columns[k].label(k) for k in GROUP_KEYS if k in keys]

        def of_type(kind: str) -> ColumnElement[int]:
            return func.sum(case((Report.type == kind, 1), else_=0))

        # Confirmed detections: one per named detection, all of the event's for an unindexed one.
        confirmed_one = case(
            (Report.detection.is_(None), Event.detection_count),
            else_=1,
        )
        per_event = (
            select(
                Report.event_id.label("event_id"),
                func.sum(case((Report.type == "confirmed", confirmed_one), else_=0)).label("confirmed"),
                of_type("false_detection").label("false_detection"),
                of_type("inaccurate_detection").label("inaccurate_detection"),
                of_type("missed_detection").label("missed_detection"),
            )
            .join(Event, Event.id == Report.event_id)
            .group_by(Report.event_id)
            .subquery()
        )
        query = (
            select(
                *group,
                func.count(Event.id),
                func.coalesce(func.sum(Event.detection_count), 0),
                func.count(ReviewSample.id),
                func.count(per_event.c.event_id),
                func.coalesce(func.sum(per_event.c.confirmed), 0),
                func.coalesce(func.sum(per_event.c.false_detection), 0),
                func.coalesce(func.sum(per_event.c.inaccurate_detection), 0),
                func.coalesce(func.sum(per_event.c.missed_detection), 0),
            )
            .select_from(Event)
            .outerjoin(ReviewSample, ReviewSample.event_id == Event.id)
            .outerjoin(per_event, per_event.c.event_id == Event.id)
            .group_by(*group)
            .order_by(*group)
        )
        if model is not None:
            query = query.where(of_model(session, model))
        rows = session.execute(query).all()
    out = []
    for row in rows:
        values = dict(zip([g.key for g in group], row[: len(group)], strict=True))
        events, detections, sampled, reviewed, confirmed, false, inaccurate, missed = (
            int(v) for v in row[len(group) :]
        )
        judged = confirmed + false + inaccurate
        out.append(
            StatsRow(
                model_name=values.get("model_name"),
                model_version=values.get("model_version"),
                source=values.get("source"),
                day=values.get("day"),
                events=events,
                detections=detections,
                sampled=sampled,
                frames_reviewed=reviewed,
                confirmed=confirmed,
                false_detection=false,
                inaccurate_detection=inaccurate,
                missed_detection=missed,
                detections_reviewed=judged,
                false_rate=_ratio(false, judged),
                inaccurate_rate=_ratio(inaccurate, judged),
                missed_rate=_ratio(missed, reviewed),
            )
        )
    return out
