"""ORM models of annotation work: each annotator's assignment (with its draft) and reviews.

An **assignment** is one annotator's share of a task: their draft (boxes, action segments, tracks)
and its revision, which every save must quote so that a stale save is refused. A task with overlap
k has k assignments. A **review** is a reviewer's verdict on a submitted assignment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cvcycle.db.models.base import Base, BigId, utcnow


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "annotator"),
        Index("ix_assignments_annotator", "annotator", "status"),
        Index("ix_assignments_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|submitted|accepted|rejected
    rev: Mapped[int] = mapped_column(Integer, default=1)
    draft: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The frame's revision (data.labels.frame_revision) the draft was built from: accepting the draft
    # is refused if the frame changed since. None for video tasks and for drafts older than 0005.
    base_revision: Mapped[str | None] = mapped_column(String(32))
    # Why the submitted work waits for a reviewer: "overlap", "spot_check", or None (no review).
    review_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(16))  # accept | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
