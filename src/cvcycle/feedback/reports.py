"""Operators' reports on events, and the sampling of empty frames for missed-detection review.

A report is one verdict on an event:

* ``confirmed``: detection ``detection`` is right; without an index, all of the event's detections
  are right (on an event where the model saw nothing: the frame is indeed empty);
* ``false_detection``: detection ``detection`` is not an object of its class;
* ``inaccurate_detection``: detection ``detection`` is an object but its box or class is wrong;
  ``box`` gives the right one;
* ``missed_detection``: the model did not see the object in ``box``.

For a false or inaccurate detection, ``detection`` may be left out when the event has exactly
one. Every verdict other than ``confirmed`` puts the event's image into a dataset's working copy
(a known frame is added to it; a snapshot becomes an image medium of that dataset) and opens an
annotation task on it, or joins the open task of that frame.

The model is silent about what it missed, so missed detections are found by sampling: among the
events where the model reported nothing, ``sample_review_frames`` draws a sparse, seeded sample
for operators to look at, and records it so that an image is never drawn twice.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cvcycle.annotate.tasks import LabelSpec, open_task
from cvcycle.boxes import Box, fit_box
from cvcycle.data.datasets import lock_dataset
from cvcycle.data.ingest import record_media
from cvcycle.data.labels import add_frames
from cvcycle.data.slices import assign_split
from cvcycle.db.engine import Database
from cvcycle.db.models import Event, Frame, Media, Report, ReviewSample, as_utc
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.feedback.events import any_of, get_event, of_model
from cvcycle.refs import ModelRef, check_dataset_name, format_ref

REPORT_TYPES = ("confirmed", "false_detection", "inaccurate_detection", "missed_detection")
DEFAULT_DATASET = "feedback"


def parse_box(text: str) -> Box:
    """``"x,y,w,h,class"`` -> Box."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 5:
        raise InvalidInput(f"box {text!r} is not x,y,w,h,class", hint="e.g. --box 12,40,30,80,person")
    try:
        x, y, w, h = (float(p) for p in parts[:4])
    except ValueError:
        raise InvalidInput(f"box {text!r}: x, y, w and h must be numbers") from None
    return Box(parts[4], x, y, w, h)


@dataclass(frozen=True)
class ReportRecord:
    """A recorded verdict; ``box`` is the right box of a missed or inaccurate detection."""

    id: int
    event_id: int | None
    type: str
    detection: int | None
    box: LabelSpec | None
    operator: str
    comment: str
    frame_id: int | None
    task_id: int | None
    dataset: str | None  # where the task is, when the report opened or joined one
    created_at: datetime


def _check_detection(event: Event, kind: str, detection: int | None) -> int | None:
    count = event.detection_count
    if kind == "missed_detection":
        if detection is not None:
            raise InvalidInput(
                "a missed_detection report names no detection: the model did not detect it",
                hint="give the box of the missed object with --box",
            )
        return None
    if detection is None:
        if kind == "confirmed" and count != 1:
            return None  # confirms the event as a whole (e.g. an empty sampled frame)
        if count == 1:
            return 0
        if count == 0:
            raise InvalidInput(f"event {event.id} has no detections, so none can be a {kind}")
        raise InvalidInput(
            f"event {event.id} has {count} detections: say which one the {kind} is about",
            hint=f"--detection N with N from 0 to {count - 1}",
        )
    if not 0 <= detection < count:
        span = f"0 to {count - 1}" if count else "none: the event has no detections"
        raise InvalidInput(f"detection {detection} is out of range for event {event.id} (valid: {span})")
    return detection


def place_event_image(session: Session, event: Event, dataset_name: str) -> int:
    """The id of the event's image as a frame in the working copy of ``dataset_name``.

    A known frame is added to the dataset (its medium gets a split there if it had none); a
    snapshot becomes an image medium (named by the snapshot's sha256, which is its blob key) with
    one frame, or is linked if that medium already exists.
    """
    dataset = lock_dataset(session, dataset_name, create=True)
    if event.snapshot_key is not None:
        media = session.scalar(select(Media).where(Media.sha256 == event.snapshot_key))
        if media is None:
            media = Media(
                sha256=event.snapshot_key,
                kind="image",
                file_name=f"event-{event.id}.jpg",
                blob_key=event.snapshot_key,
                size=event.snapshot_size or 0,
                width=event.width,
                height=event.height,
                fps=None,
                frame_count=1,
                duration_s=None,
                codec="jpeg",
                sample_every=1,
                source=event.source,
                attributes={"origin": "feedback"},
            )
            row = {
                "index": 0,
                "timestamp_s": 0.0,
                "blob_key": event.snapshot_key,
                "blob_size": event.snapshot_size or 0,
                "width": event.width,
                "height": event.height,
            }
            return record_media(session, dataset_name, media, [row]).frame_ids[0]
        frame_id = session.scalars(
            select(Frame.id).where(Frame.media_id == media.id).order_by(Frame.index)
        ).first()
        if frame_id is None:
            raise NotFound(f"the snapshot medium of event {event.id} has no frame")
        media_id = media.id
    else:
        frame = session.get(Frame, event.frame_id) if event.frame_id is not None else None
        if frame is None:
            raise NotFound(f"the frame of event {event.id} no longer exists")
        frame_id, media_id = frame.id, frame.media_id
    assign_split(session, dataset, media_id)
    add_frames(session, dataset, [frame_id])
    return int(frame_id)


def report_event(
    db: Database,
    event_id: int,
    type: str,
    box: Box | None = None,
    detection: int | None = None,
    operator: str = "",
    comment: str = "",
    dataset: str = DEFAULT_DATASET,
) -> ReportRecord:
    """Record an operator's verdict on an event; a non-confirming one opens (or joins) a task."""
    if type not in REPORT_TYPES:
        raise InvalidInput(f"report type {type!r} is not one of {', '.join(REPORT_TYPES)}")
    check_dataset_name(dataset)
    with db.write() as session:
        event = get_event(session, event_id)
        if type in ("missed_detection", "inaccurate_detection"):
            if box is None:
                raise InvalidInput(
                    f"a report of type {type} needs the box of the object",
                    hint="--box x,y,w,h,class in pixels of the event's image",
                )
            box = fit_box(box, event.width, event.height)
        elif box is not None:
            raise InvalidInput(
                f"a {type} report takes no box", hint="boxes go with missed or inaccurate reports"
            )
        index = _check_detection(event, type, detection)
        frame_id, task_id, target = event.frame_id, None, None
        if type != "confirmed":
            frame_id = place_event_image(session, event, dataset)
            dataset_row = lock_dataset(session, dataset)
            task_id, target = open_task(session, dataset_row, frame_id).id, dataset
        report = Report(
            event_id=event.id,
            frame_id=frame_id,
            type=type,
            detection=index,
            box=[box.x, box.y, box.w, box.h] if box else None,
            cls=box.cls if box else None,
            operator=operator,
            comment=comment,
            task_id=task_id,
        )
        session.add(report)
        session.flush()
        return ReportRecord(
            report.id,
            event.id,
            type,
            index,
            LabelSpec(box.cls, box.xywh()) if box else None,
            operator,
            comment,
            frame_id,
            task_id,
            target,
            as_utc(report.created_at),
        )


# -- sampling for missed-detection review -----------------------------------------------------------


@dataclass(frozen=True)
class SampledFrame:
    event_id: int
    image_key: str  # "frame:<id>" or "snapshot:<sha256>"
    frame_id: int | None
    snapshot_key: str | None
    source: str
    time: datetime
    model: str  # NAME@VERSION


def image_key(frame_id: int | None, snapshot_key: str | None) -> str:
    """What makes two events show the same image: the snapshot's bytes or the frame."""
    return f"snapshot:{snapshot_key}" if snapshot_key is not None else f"frame:{frame_id}"


def _draw(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the image, not by the order of events."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample_review_frames(
    db: Database,
    model: str | ModelRef,
    *,
    limit: int = 20,
    rate: float = 1.0,
    min_gap_s: float = 0.0,
    seed: int = 0,
) -> list[SampledFrame]:
    """Draw up to ``limit`` events where the model saw nothing, for missed-detection review.

    ``model`` is every version of ``detector``, or the one version ``detector@2``,
    ``detector@latest`` or ``detector:production`` names now.

    Each candidate image gets a number in [0, 1) from ``seed`` and the image; those below ``rate``
    are eligible (``rate=0.1``: about one empty frame in ten), and the lowest numbers are taken
    first. ``min_gap_s`` keeps samples of one source at least that far apart in time (counting
    earlier samples), so a long empty stretch of one camera does not fill the sample with
    near-identical frames. Same database state and seed, same sample. Drawn images are recorded
    and never drawn again, whichever event shows them.
    """
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, got {limit}")
    if not 0.0 < rate <= 1.0:
        raise InvalidInput(f"rate must be in (0, 1], got {rate}")
    if min_gap_s < 0:
        raise InvalidInput(f"min_gap_s must not be negative, got {min_gap_s}")
    with db.write() as session:
        query = (
            select(
                Event.id,
                Event.source,
                Event.time,
                Event.frame_id,
                Event.snapshot_key,
                Event.model_name,
                Event.model_version,
            )
            .where(
                of_model(session, model),
                Event.detection_count == 0,
                ~exists().where(ReviewSample.event_id == Event.id),
            )
            .order_by(Event.id)
        )
        candidates = []
        for eid, source, time, frame_id, snapshot_key, name, version in session.execute(query):
            key = image_key(frame_id, snapshot_key)
            draw = _draw(seed, key)
            if draw < rate:
                label = format_ref(name, version)
                candidates.append((draw, int(eid), key, source, as_utc(time), frame_id, snapshot_key, label))
        candidates.sort()
        taken = _sampled_image_keys(session, {c[2] for c in candidates})
        times: dict[str, list[datetime]] = defaultdict(list)
        if min_gap_s > 0:
            for source, time in session.execute(
                select(Event.source, Event.time).join(ReviewSample, ReviewSample.event_id == Event.id)
            ):
                times[source].append(as_utc(time))
        picked: list[SampledFrame] = []
        for _, eid, key, source, time, frame_id, snapshot_key, label in candidates:
            if len(picked) >= limit:
                break
            if key in taken:
                continue
            if min_gap_s > 0 and any(abs((time - t).total_seconds()) < min_gap_s for t in times[source]):
                continue
            taken.add(key)
            times[source].append(time)
            picked.append(SampledFrame(eid, key, frame_id, snapshot_key, source, time, label))
        session.add_all(ReviewSample(event_id=p.event_id, image_key=p.image_key, seed=seed) for p in picked)
        session.flush()
    return picked


def _sampled_image_keys(session: Session, keys: set[str]) -> set[str]:
    wanted = sorted(keys)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            session.scalars(
                select(ReviewSample.image_key).where(any_of(session, ReviewSample.image_key, chunk))
            )
        )
    return found
