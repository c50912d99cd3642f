"""Reading a version: its frames, boxes and segments through a slice (a ``Selection``), and a summary.

Every reader here starts from ``Selection.frames_query``, so whoever reads a selection (a training
manifest, an evaluation set, an export) sees the same frames and the same boxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import ResolvedRef
from cvcycle.data.selection import Selection, resolve_selection
from cvcycle.data.slices import SliceInfo
from cvcycle.data.versions import visible_at
from cvcycle.db.models import Frame, Label, Media, Segment
from cvcycle.refs import DatasetRef


@dataclass(frozen=True)
class FrameRow:
    frame_id: int
    media_id: int
    media_sha256: str
    media_kind: str
    file_name: str
    source: str
    media_attributes: dict[str, Any]
    index: int
    timestamp_s: float
    blob_key: str
    blob_size: int
    width: int
    height: int
    split: str


@dataclass(frozen=True)
class BoxRow:
    frame_id: int
    id: int
    key: int
    rev: int
    cls: str
    x: float
    y: float
    w: float
    h: float
    track_id: int | None
    score: float | None
    source: str
    attributes: dict[str, Any] | None


def snapshot_frames(session: Session, selection: Selection) -> list[FrameRow]:
    """The selected frames with their media, ordered by medium and frame index."""
    sub = selection.frames_query().subquery()
    rows = session.execute(
        select(
            Frame.id,
            Frame.media_id,
            Media.sha256,
            Media.kind,
            Media.file_name,
            Media.source,
            Media.attributes,
            Frame.index,
            Frame.timestamp_s,
            Frame.blob_key,
            Frame.blob_size,
            Frame.width,
            Frame.height,
            sub.c.split,
        )
        .join(sub, sub.c.id == Frame.id)
        .join(Media, Media.id == Frame.media_id)
        .order_by(Frame.media_id, Frame.index)
    )
    return [FrameRow(*row) for row in rows]


def boxes_query(selection: Selection, *columns: Any) -> Select[*tuple[Any, ...]]:
    """A query of ``columns`` of the boxes on the selected frames, ordered by frame id."""
    sub = selection.frames_query().subquery()
    return (
        select(*columns)
        .where(
            Label.dataset_id == selection.ref.dataset.id,
            visible_at(Label, selection.ref.version),
            Label.frame_id.in_(select(sub.c.id)),
        )
        .order_by(Label.frame_id, Label.id)
    )


def iter_boxes(session: Session, selection: Selection) -> Iterator[BoxRow]:
    """Boxes on the selected frames, ordered by frame id."""
    query = boxes_query(
        selection,
        Label.frame_id, Label.id, Label.key, Label.rev, Label.cls, Label.x, Label.y, Label.w, Label.h,
        Label.track_id, Label.score, Label.source, Label.attributes,
    )  # fmt: skip
    for row in session.execute(query.execution_options(yield_per=50_000)):
        yield BoxRow(*row)


def count_frames(session: Session, selection: Selection) -> int:
    """How many frames the selection holds."""
    return int(session.scalar(select(func.count()).select_from(selection.frames_query().subquery())) or 0)


def segments_of(session: Session, ref: ResolvedRef, media_ids: list[int]) -> list[Any]:
    if not media_ids:
        return []
    return list(
        session.scalars(
            select(Segment)
            .where(
                Segment.dataset_id == ref.dataset.id,
                visible_at(Segment, ref.version),
                Segment.media_id.in_(media_ids),
            )
            .order_by(Segment.media_id, Segment.start_frame)
        )
    )


@dataclass(frozen=True)
class ClassCounts:
    total: int
    per_class: dict[str, int]


@dataclass(frozen=True)
class DatasetSummary:
    """A version (or the working copy) through a slice: frames, media, splits, boxes and segments."""

    dataset: str
    version: int | None  # None for the working copy
    working_copy: bool
    head: int
    slice: SliceInfo
    frames: int
    media: int
    splits: dict[str, int]  # frames per train/val/test
    labels: ClassCounts
    segments: ClassCounts


def _class_counts(per_class: dict[str, Any]) -> ClassCounts:
    counts = {k: int(v) for k, v in per_class.items()}
    return ClassCounts(total=sum(counts.values()), per_class=counts)


def show_dataset(
    session: Session, dataset: str | DatasetRef, slice_text: str | None = None
) -> DatasetSummary:
    """Counts of frames, media, boxes and segments per class, and frames per split."""
    selection = resolve_selection(session, dataset, slice_text)
    ref, spec = selection.ref, selection.slice
    sub = selection.frames_query().subquery()
    frames, media = session.execute(
        select(func.count(), func.count(func.distinct(sub.c.media_id))).select_from(sub)
    ).one()
    splits: dict[str, int] = dict(
        session.execute(select(sub.c.split, func.count()).group_by(sub.c.split)).all()
    )
    per_class = dict(
        session.execute(
            boxes_query(selection, Label.cls, func.count())
            .order_by(None)
            .group_by(Label.cls)
            .order_by(Label.cls)
        ).all()
    )
    media_sub = select(func.distinct(sub.c.media_id)).scalar_subquery()
    segments = dict(
        session.execute(
            select(Segment.cls, func.count())
            .where(
                Segment.dataset_id == ref.dataset.id,
                visible_at(Segment, ref.version),
                Segment.media_id.in_(media_sub),
            )
            .group_by(Segment.cls)
            .order_by(Segment.cls)
        ).all()
    )
    return DatasetSummary(
        dataset=ref.dataset.name,
        version=ref.version if ref.committed else None,
        working_copy=not ref.committed,
        head=ref.dataset.head,
        slice=spec.info,
        frames=int(frames),
        media=int(media),
        splits={k: int(splits.get(k, 0)) for k in ("train", "val", "test")},
        labels=_class_counts(per_class),
        segments=_class_counts(segments),
    )
