"""ORM models of the metadata database.

Versioned rows (dataset frames, labels, action segments, tags, slices) are immutable apart from
closing: each has ``created_v`` and ``deleted_v``. A row belongs to version ``v`` when
``created_v <= v`` and (``deleted_v`` is NULL or ``deleted_v > v``). The working copy of a dataset
is version ``head + 1``: new rows are written with ``created_v = head + 1`` and an edit closes the
old row with ``deleted_v = head + 1``. Committing therefore only records the version and moves
``head``, so its cost follows the change, and any snapshot or diff is an indexed query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cvcycle.db.models.base import Base, BigId, utcnow


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    head: Mapped[int] = mapped_column(Integer, default=0)
    next_key: Mapped[int] = mapped_column(BigInteger, default=1)
    split_ratios: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def working_version(self) -> int:
        return self.head + 1


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200), default="")
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Media(Base):
    """A video or an image, identified by the sha256 of its bytes (shared by all datasets)."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(500))
    blob_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    codec: Mapped[str] = mapped_column(String(50), default="")
    sample_every: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(200), default="", index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Frame(Base):
    """One sampled frame of a medium; its pixels are a JPEG blob in the store."""

    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("media_id", "index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    timestamp_s: Mapped[float] = mapped_column(Float)
    blob_key: Mapped[str] = mapped_column(String(64))
    blob_size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class DatasetMedia(Base):
    """A medium's place in a dataset: its split, assigned once and never changed."""

    __tablename__ = "dataset_media"
    __table_args__ = (UniqueConstraint("dataset_id", "media_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(16))


class DatasetFrame(Base):
    """Versioned membership of a frame in a dataset."""

    __tablename__ = "dataset_frames"
    __table_args__ = (
        Index("ix_dataset_frames_created", "dataset_id", "created_v"),
        Index("ix_dataset_frames_deleted", "dataset_id", "deleted_v"),
        Index("ix_dataset_frames_frame", "frame_id", "dataset_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    created_v: Mapped[int] = mapped_column(Integer)
    deleted_v: Mapped[int | None] = mapped_column(Integer)


class Label(Base):
    """A box on a frame. ``key`` names the label across edits; ``rev`` counts its edits."""

    __tablename__ = "labels"
    __table_args__ = (
        Index("ix_labels_created", "dataset_id", "created_v"),
        Index("ix_labels_deleted", "dataset_id", "deleted_v"),
        Index("ix_labels_key", "dataset_id", "key"),
        Index("ix_labels_frame", "frame_id", "dataset_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    key: Mapped[int] = mapped_column(BigInteger)
    rev: Mapped[int] = mapped_column(Integer, default=1)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    cls: Mapped[str] = mapped_column(String(100))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16), default="human")
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    author: Mapped[str | None] = mapped_column(String(200))
    created_v: Mapped[int] = mapped_column(Integer)
    deleted_v: Mapped[int | None] = mapped_column(Integer)


class Segment(Base):
    """An action of one class over an inclusive frame-index range of one medium."""

    __tablename__ = "segments"
    __table_args__ = (
        Index("ix_segments_created", "dataset_id", "created_v"),
        Index("ix_segments_deleted", "dataset_id", "deleted_v"),
        Index("ix_segments_key", "dataset_id", "key"),
        Index("ix_segments_media", "media_id", "dataset_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    key: Mapped[int] = mapped_column(BigInteger)
    rev: Mapped[int] = mapped_column(Integer, default=1)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    cls: Mapped[str] = mapped_column(String(100))
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    track_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), default="human")
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    author: Mapped[str | None] = mapped_column(String(200))
    created_v: Mapped[int] = mapped_column(Integer)
    deleted_v: Mapped[int | None] = mapped_column(Integer)


class Tag(Base):
    """A tag on a frame or on a whole medium (exactly one of the two)."""

    __tablename__ = "tags"
    __table_args__ = (
        Index("ix_tags_created", "dataset_id", "created_v"),
        Index("ix_tags_deleted", "dataset_id", "deleted_v"),
        Index("ix_tags_name", "dataset_id", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    created_v: Mapped[int] = mapped_column(Integer)
    deleted_v: Mapped[int | None] = mapped_column(Integer)


class Slice(Base):
    """A named selection: a filter expression or an explicit list of frame ids."""

    __tablename__ = "slices"
    __table_args__ = (Index("ix_slices_name", "dataset_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_v: Mapped[int] = mapped_column(Integer)
    deleted_v: Mapped[int | None] = mapped_column(Integer)
