"""ORM models of the feedback loop: production events, operators' reports, annotation tasks, review samples.

An **event** is what a model in production emitted for one image: its source, time, model version
and detections, and the image itself, either a frame cvcycle already knows (``frame_id``) or a
snapshot JPEG in the blob store (``snapshot_key``). A **report** is an operator's verdict on an
event. A report that says the model was wrong opens an annotation **task** on the event's frame in
a dataset's working copy (or joins the open task of that frame). A **review sample** records that
an event where the model saw nothing was picked for missed-detection review, so that the same
frame is never picked twice.

Times are stored in UTC; SQLite keeps no offset, so readers attach UTC to what they load.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cvcycle.db.models.base import Base, BigId, utcnow


class Event(Base):
    """What a production model emitted for one image."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_model", "model_name", "model_version", "detection_count"),
        Index("ix_events_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The producer's id of the event: pushing the same id again is a no-op.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(200))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[int] = mapped_column(Integer)
    detections: Mapped[list[Any]] = mapped_column(JSON)  # Detections.to_json() form
    # Kept beside the JSON so that "the model saw nothing" is an indexed, dialect-neutral query.
    detection_count: Mapped[int] = mapped_column(Integer)
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id", ondelete="SET NULL"))
    snapshot_key: Mapped[str | None] = mapped_column(String(64))
    snapshot_size: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Task(Base):
    """Annotation work on one frame of a dataset's working copy; its reports point at it."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status", "status", "assignee"),
        Index("ix_tasks_frame", "dataset_id", "frame_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # annotate | review
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done | cancelled
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    assignee: Mapped[str | None] = mapped_column(String(200))
    # Set for a video task (actions and tracks over the whole medium); frame_id is then its first frame.
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    # How many annotators label the item independently (k); above 1 the work goes to review.
    overlap: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The frame's revision (data.labels.frame_revision) when the task was opened: completing it is
    # refused if the frame changed since. None for video tasks and for tasks older than 0005.
    base_revision: Mapped[str | None] = mapped_column(String(32))


class Report(Base):
    """An operator's verdict on an event: confirmed, or a false, inaccurate or missed detection."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    # The frame the verdict is about, as a frame of the dataset its task targets.
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(32))
    detection: Mapped[int | None] = mapped_column(Integer)  # index into the event's detections
    box: Mapped[list[Any] | None] = mapped_column(JSON)  # [x, y, w, h] in pixels
    cls: Mapped[str | None] = mapped_column(String(100))
    operator: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    # The task the report opened or joined (reports on a frame with an open task join it).
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewSample(Base):
    """An event where the model saw nothing, picked for an operator to look for missed objects."""

    __tablename__ = "review_samples"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), unique=True)
    # "frame:<id>" or "snapshot:<sha256>": unique, so one image is sampled once whatever the event.
    image_key: Mapped[str] = mapped_column(String(80), unique=True)
    seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
