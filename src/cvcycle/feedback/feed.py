"""The operator's view of the events: the live feed, one event with its verdicts, its image, the review queue.

The feed is in arrival order (event id), newest first when paging back and oldest first when
following new arrivals, so a live list can ask "what came after the last id I have". Each item
carries the verdicts already given on it, so the list shows what is left to review.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session

from cvcycle.db.engine import Database
from cvcycle.db.models import Event, Frame, ModelVersion, Report, ReviewSample, as_utc
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.feedback.events import EventRecord, get_event
from cvcycle.refs import format_ref

MAX_FEED_PAGE = 20_000


@dataclass(frozen=True)
class FeedItem(EventRecord):
    """An event of the feed with the verdicts given on it: report types, oldest first."""

    verdicts: list[str]


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_FEED_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_FEED_PAGE}, got {limit}")


def _verdicts(session: Session, event_ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if not event_ids:
        return found
    low, high = min(event_ids), max(event_ids)
    # A range, not IN (...): a page is a contiguous run of ids, and 10,000 bound values are slow.
    rows = session.execute(
        select(Report.event_id, Report.type)
        .where(Report.event_id >= low, Report.event_id <= high)
        .order_by(Report.id)
    )
    for event_id, kind in rows:
        if event_id is not None:
            found[int(event_id)].append(kind)
    return found


def _items(session: Session, rows: Sequence[Event]) -> list[FeedItem]:
    verdicts = _verdicts(session, [r.id for r in rows])
    return [FeedItem.of(r, verdicts=verdicts.get(r.id, [])) for r in rows]


def feed_page(db: Database, *, limit: int = 200, before_id: int | None = None) -> list[FeedItem]:
    """The newest events (older than ``before_id`` when given), newest first."""
    _check_limit(limit)
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Event.id < before_id)
    with db.read() as session:
        return _items(session, list(session.scalars(query)))


def feed_after(db: Database, after_id: int, *, limit: int = 500) -> list[FeedItem]:
    """Events that arrived after ``after_id``, oldest first: what a live feed has not shown yet."""
    _check_limit(limit)
    with db.read() as session:
        rows = session.scalars(select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit))
        return _items(session, list(rows))


def newest_event_id(db: Database) -> int:
    """The id of the newest event, 0 when there is none."""
    with db.read() as session:
        return int(session.scalar(select(func.max(Event.id))) or 0)


@dataclass(frozen=True)
class Verdict:
    """A report as the live feed passes it on: which event got which verdict."""

    report_id: int
    event_id: int
    type: str


def newest_report_id(db: Database) -> int:
    """The id of the newest report, 0 when there is none."""
    with db.read() as session:
        return int(session.scalar(select(func.max(Report.id))) or 0)


def verdicts_after(db: Database, after_report_id: int, *, limit: int = 500) -> list[Verdict]:
    """Reports on events made after ``after_report_id``, oldest first: what other operators just said."""
    _check_limit(limit)
    with db.read() as session:
        rows = session.execute(
            select(Report.id, Report.event_id, Report.type)
            .where(Report.id > after_report_id, Report.event_id.is_not(None))
            .order_by(Report.id)
            .limit(limit)
        )
        return [Verdict(int(rid), int(eid), kind) for rid, eid, kind in rows if eid is not None]


@dataclass(frozen=True)
class EventReport:
    """A report as the event's page lists it: ``box`` is ``[x, y, w, h]`` of class ``cls``."""

    id: int
    type: str
    detection: int | None
    box: list[float] | None
    cls: str | None
    operator: str
    comment: str
    task_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class EventDetail(EventRecord):
    """One event with the classes an operator may pick and every report on it, oldest first."""

    classes: list[str]
    reports: list[EventReport]


def event_detail(db: Database, event_id: int) -> EventDetail:
    """One event with its verdicts (all reports on it) and the classes an operator may pick."""
    with db.read() as session:
        event = get_event(session, event_id)
        reports = session.scalars(select(Report).where(Report.event_id == event_id).order_by(Report.id))
        classes = session.scalar(
            select(ModelVersion.classes).where(
                ModelVersion.name == event.model_name, ModelVersion.version == event.model_version
            )
        )
        seen = sorted({d["cls"] for d in event.detections})
        return EventDetail.of(
            event,
            classes=list(classes or []) or seen or ["person"],
            reports=[
                EventReport(
                    id=r.id,
                    type=r.type,
                    detection=r.detection,
                    box=r.box,
                    cls=r.cls,
                    operator=r.operator,
                    comment=r.comment,
                    task_id=r.task_id,
                    created_at=as_utc(r.created_at),
                )
                for r in reports
            ],
        )


def event_image(db: Database, event_id: int) -> tuple[str, int | None]:
    """The blob key (and size) of the event's JPEG: its snapshot or the frame it refers to."""
    with db.read() as session:
        event = get_event(session, event_id)
        if event.snapshot_key is not None:
            return event.snapshot_key, event.snapshot_size
        frame = session.get(Frame, event.frame_id) if event.frame_id is not None else None
        if frame is None:
            raise NotFound(f"the image of event {event_id} no longer exists (its frame was removed)")
        return frame.blob_key, frame.blob_size


@dataclass(frozen=True)
class EventModel:
    """A model version that emitted events: how many, and how many of them were empty."""

    name: str
    version: int
    model: str  # NAME@VERSION
    events: int
    empty: int


def event_models(db: Database) -> list[EventModel]:
    """Which model versions emitted events, with counts, by name and version."""
    with db.read() as session:
        rows = session.execute(
            select(
                Event.model_name,
                Event.model_version,
                func.count(),
                func.sum(case((Event.detection_count == 0, 1), else_=0)),
            )
            .group_by(Event.model_name, Event.model_version)
            .order_by(Event.model_name, Event.model_version)
        )
        return [EventModel(n, v, format_ref(n, v), int(c), int(e or 0)) for n, v, c, e in rows]


@dataclass(frozen=True)
class ReviewFrame(EventRecord):
    """An event drawn for missed-detection review (``sample_id`` is the draw)."""

    sample_id: int


def pending_review_frames(db: Database, *, limit: int = 100) -> list[ReviewFrame]:
    """Frames drawn for missed-detection review that no operator has given a verdict on yet, oldest first."""
    _check_limit(limit)
    with db.read() as session:
        rows = session.execute(
            select(ReviewSample.id, Event)
            .join(Event, Event.id == ReviewSample.event_id)
            .where(~exists().where(Report.event_id == Event.id))
            .order_by(ReviewSample.id)
            .limit(limit)
        )
        return [ReviewFrame.of(event, sample_id=int(sid)) for sid, event in rows]
