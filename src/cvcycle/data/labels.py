"""The working copy: adding, editing and deleting boxes, action segments, tags and frames.

A frame's boxes also have a revision as a whole (``frame_revision``), so work done on a frame
(an annotation task) is written with ``replace_frame_boxes`` only if the frame did not change meanwhile.

Every function here writes into version ``head + 1`` under the dataset lock. Rows are never
updated in place except to close them: an edit closes the current row (``deleted_v = head + 1``)
and inserts its successor with the same ``key`` and ``rev + 1``. The close is a compare-and-set on
the row that the caller last saw, so a stale revision raises Conflict instead of overwriting.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from cvcycle.boxes import Box, check_class_name, fit_box
from cvcycle.data.datasets import allocate_keys, lock_dataset
from cvcycle.data.versions import visible_at
from cvcycle.db.bulk import bulk_insert
from cvcycle.db.models import Dataset, DatasetFrame, Frame, Label, Media, Segment, Tag
from cvcycle.errors import Conflict, InvalidInput, NotFound

LABEL_SOURCES = ("human", "pseudo", "import")


@dataclass(frozen=True)
class BoxInput:
    """A box to write: pixel coordinates, x/y top-left."""

    frame_id: int
    cls: str
    x: float
    y: float
    w: float
    h: float
    track_id: int | None = None
    score: float | None = None
    source: str = "human"
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class SegmentInput:
    """An action of ``cls`` over the inclusive frame-index range [start_frame, end_frame] of a medium."""

    media_id: int
    cls: str
    start_frame: int
    end_frame: int
    track_id: int | None = None
    source: str = "human"
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class LabelRecord:
    id: int
    key: int
    rev: int
    frame_id: int
    cls: str
    x: float
    y: float
    w: float
    h: float
    track_id: int | None
    score: float | None
    source: str
    attributes: dict[str, Any] | None
    author: str | None
    created_v: int
    deleted_v: int | None

    @classmethod
    def of(cls, row: Label) -> LabelRecord:
        return cls(
            row.id,
            row.key,
            row.rev,
            row.frame_id,
            row.cls,
            row.x,
            row.y,
            row.w,
            row.h,
            row.track_id,
            row.score,
            row.source,
            row.attributes,
            row.author,
            row.created_v,
            row.deleted_v,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SegmentRecord:
    id: int
    key: int
    rev: int
    media_id: int
    cls: str
    start_frame: int
    end_frame: int
    track_id: int | None
    source: str
    attributes: dict[str, Any] | None = field(default=None)

    @classmethod
    def of(cls, row: Segment) -> SegmentRecord:
        return cls(
            row.id,
            row.key,
            row.rev,
            row.media_id,
            row.cls,
            row.start_frame,
            row.end_frame,
            row.track_id,
            row.source,
            row.attributes,
        )


def _check_box(box: BoxInput, width: int, height: int, where: str) -> BoxInput:
    """``box`` with a known source, fitted into its frame by the one rule of ``cvcycle.boxes``."""
    if box.source not in LABEL_SOURCES:
        raise InvalidInput(f"{where}: source {box.source!r} is not one of {', '.join(LABEL_SOURCES)}")
    fitted = fit_box(Box(box.cls, box.x, box.y, box.w, box.h), width, height, where)
    if fitted.xywh() != (box.x, box.y, box.w, box.h):
        box = replace(box, x=fitted.x, y=fitted.y, w=fitted.w, h=fitted.h)
    return box


def _frame_sizes(session: Session, dataset: Dataset, frame_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Width and height of those frames that are in the working copy of the dataset."""
    wanted = sorted(set(frame_ids))
    sizes: dict[int, tuple[int, int]] = {}
    for start in range(0, len(wanted), 10_000):
        chunk = wanted[start : start + 10_000]
        rows = session.execute(
            select(Frame.id, Frame.width, Frame.height)
            .join(DatasetFrame, DatasetFrame.frame_id == Frame.id)
            .where(
                DatasetFrame.dataset_id == dataset.id,
                visible_at(DatasetFrame, dataset.working_version),
                Frame.id.in_(chunk),
            )
        )
        sizes.update({int(i): (int(w), int(h)) for i, w, h in rows})
    return sizes


def add_boxes(session: Session, name: str, boxes: Sequence[BoxInput], author: str | None = None) -> list[int]:
    """Add boxes to the working copy; returns their keys. All or nothing."""
    dataset = lock_dataset(session, name)
    sizes = _frame_sizes(session, dataset, (b.frame_id for b in boxes))
    checked = []
    for i, box in enumerate(boxes):
        if box.frame_id not in sizes:
            raise NotFound(f"box {i}: frame {box.frame_id} is not in the working copy of {name!r}")
        checked.append(_check_box(box, *sizes[box.frame_id], where=f"box {i}"))
    first = allocate_keys(dataset, len(checked))
    version = dataset.working_version
    rows = [
        {
            "dataset_id": dataset.id,
            "key": first + i,
            "rev": 1,
            "frame_id": b.frame_id,
            "cls": b.cls,
            "x": b.x,
            "y": b.y,
            "w": b.w,
            "h": b.h,
            "track_id": b.track_id,
            "score": b.score,
            "source": b.source,
            "attributes": b.attributes,
            "author": author,
            "created_v": version,
            "deleted_v": None,
        }
        for i, b in enumerate(checked)
    ]
    bulk_insert(session, Label, rows)
    return [first + i for i in range(len(rows))]


def current_label(session: Session, name: str, key: int) -> LabelRecord:
    """The label ``key`` as the working copy has it."""
    from cvcycle.data.datasets import get_dataset

    dataset = get_dataset(session, name)
    row = session.scalar(
        select(Label).where(
            Label.dataset_id == dataset.id, Label.key == key, visible_at(Label, dataset.working_version)
        )
    )
    if row is None:
        raise NotFound(f"label {key} does not exist in the working copy of {name!r}")
    return LabelRecord.of(row)


def _close_current(
    session: Session, model: type[Label] | type[Segment], dataset: Dataset, key: int, expected_rev: int
) -> Any:
    version = dataset.working_version
    row = session.scalar(
        select(model).where(model.dataset_id == dataset.id, model.key == key, visible_at(model, version))
    )
    kind = "label" if model is Label else "segment"
    if not isinstance(row, Label | Segment):
        raise NotFound(f"{kind} {key} does not exist in the working copy of {dataset.name!r}")
    if row.rev != expected_rev:
        raise Conflict(
            f"{kind} {key} is at revision {row.rev}, the edit was made on revision {expected_rev}",
            hint="reload it, re-apply the change and save again",
        )
    closed = session.execute(
        update(model)
        .where(and_(model.id == row.id, model.deleted_v.is_(None)))
        .values(deleted_v=version)
        .execution_options(synchronize_session=False)
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"{kind} {key} was changed by another writer", hint="reload it and save again")
    session.expire(row)
    return row


def edit_box(
    session: Session,
    name: str,
    key: int,
    expected_rev: int,
    changes: dict[str, Any],
    author: str | None = None,
) -> LabelRecord:
    """Replace label ``key`` (at revision ``expected_rev``) by a copy with ``changes`` applied."""
    allowed = {"cls", "x", "y", "w", "h", "track_id", "score", "source", "attributes"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(sorted(unknown))} of a label", hint=f"allowed: {allowed}"
        )
    dataset = lock_dataset(session, name)
    old = _close_current(session, Label, dataset, key, expected_rev)
    box = BoxInput(
        frame_id=old.frame_id,
        cls=old.cls,
        x=old.x,
        y=old.y,
        w=old.w,
        h=old.h,
        track_id=old.track_id,
        score=old.score,
        source=old.source,
        attributes=old.attributes,
    )
    # A human touching a pseudo-label makes it a human label unless told otherwise.
    if old.source == "pseudo" and "source" not in changes:
        changes = {**changes, "source": "human"}
    box = replace(box, **changes)
    frame = session.get(Frame, old.frame_id)
    assert frame is not None
    box = _check_box(box, frame.width, frame.height, where=f"label {key}")
    new = Label(
        dataset_id=dataset.id,
        key=key,
        rev=old.rev + 1,
        frame_id=box.frame_id,
        cls=box.cls,
        x=box.x,
        y=box.y,
        w=box.w,
        h=box.h,
        track_id=box.track_id,
        score=box.score,
        source=box.source,
        attributes=box.attributes,
        author=author,
        created_v=dataset.working_version,
        deleted_v=None,
    )
    session.add(new)
    session.flush()
    return LabelRecord.of(new)


def delete_box(session: Session, name: str, key: int, expected_rev: int) -> None:
    dataset = lock_dataset(session, name)
    _close_current(session, Label, dataset, key, expected_rev)


def _media_frame_counts(session: Session, media_ids: Iterable[int]) -> dict[int, int]:
    ids = sorted(set(media_ids))
    if not ids:
        return {}
    rows = session.execute(select(Media.id, Media.frame_count).where(Media.id.in_(ids))).all()
    return {int(i): int(n) for i, n in rows}


def _check_segment(seg: SegmentInput, frame_count: int, where: str) -> None:
    check_class_name(seg.cls, where)
    if seg.source not in LABEL_SOURCES:
        raise InvalidInput(f"{where}: source {seg.source!r} is not one of {', '.join(LABEL_SOURCES)}")
    if seg.start_frame < 0 or seg.end_frame < seg.start_frame:
        raise InvalidInput(f"{where}: frame range {seg.start_frame}..{seg.end_frame} is empty or negative")
    if seg.end_frame >= frame_count:
        raise InvalidInput(f"{where}: end frame {seg.end_frame} is past the medium's {frame_count} frames")


def add_segments(
    session: Session, name: str, segments: Sequence[SegmentInput], author: str | None = None
) -> list[int]:
    """Add action segments to the working copy; returns their keys. All or nothing."""
    dataset = lock_dataset(session, name)
    counts = _media_frame_counts(session, (s.media_id for s in segments))
    for i, seg in enumerate(segments):
        if seg.media_id not in counts:
            raise NotFound(f"segment {i}: medium {seg.media_id} does not exist")
        _check_segment(seg, counts[seg.media_id], where=f"segment {i}")
    first = allocate_keys(dataset, len(segments))
    version = dataset.working_version
    rows = [
        {
            "dataset_id": dataset.id,
            "key": first + i,
            "rev": 1,
            "media_id": s.media_id,
            "cls": s.cls,
            "start_frame": s.start_frame,
            "end_frame": s.end_frame,
            "track_id": s.track_id,
            "source": s.source,
            "attributes": s.attributes,
            "author": author,
            "created_v": version,
            "deleted_v": None,
        }
        for i, s in enumerate(segments)
    ]
    bulk_insert(session, Segment, rows)
    return [first + i for i in range(len(rows))]


def delete_segment(session: Session, name: str, key: int, expected_rev: int) -> None:
    dataset = lock_dataset(session, name)
    _close_current(session, Segment, dataset, key, expected_rev)


def add_frames(session: Session, dataset: Dataset, frame_ids: Sequence[int]) -> int:
    """Put frames into the working copy (those already there are skipped); returns how many were added."""
    version = dataset.working_version
    present: set[int] = set()
    ids = sorted(set(frame_ids))
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        present.update(
            session.scalars(
                select(DatasetFrame.frame_id).where(
                    DatasetFrame.dataset_id == dataset.id,
                    visible_at(DatasetFrame, version),
                    DatasetFrame.frame_id.in_(chunk),
                )
            )
        )
    rows = [
        {"dataset_id": dataset.id, "frame_id": i, "created_v": version, "deleted_v": None}
        for i in ids
        if i not in present
    ]
    bulk_insert(session, DatasetFrame, rows)
    return len(rows)


def add_tag(
    session: Session, name: str, tag: str, *, frame_ids: Sequence[int] = (), media_ids: Sequence[int] = ()
) -> int:
    """Tag frames and/or whole media in the working copy (idempotent); returns how many tags were added."""
    if not tag or len(tag) > 200 or "=" in tag or "," in tag:
        raise InvalidInput(f"tag {tag!r} is empty, too long, or contains '=' or ','")
    dataset = lock_dataset(session, name)
    version = dataset.working_version
    existing = session.execute(
        select(Tag.frame_id, Tag.media_id).where(
            Tag.dataset_id == dataset.id, Tag.name == tag, visible_at(Tag, version)
        )
    ).all()
    have_frames = {f for f, _ in existing if f is not None}
    have_media = {m for _, m in existing if m is not None}
    rows = [
        {"dataset_id": dataset.id, "frame_id": f, "media_id": None, "name": tag, "created_v": version}
        for f in sorted(set(frame_ids) - have_frames)
    ] + [
        {"dataset_id": dataset.id, "frame_id": None, "media_id": m, "name": tag, "created_v": version}
        for m in sorted(set(media_ids) - have_media)
    ]
    if rows:
        bulk_insert(session, Tag, rows)
    return len(rows)


# -- one frame's boxes as a whole -------------------------------------------------------------------

FRAME_REVISION_CHARS = 12
# Boxes closer than this in every coordinate are the same box (clipping may move one by a rounding).
SAME_BOX_TOLERANCE_PX = 1e-6


def frame_revision(session: Session, dataset: Dataset, frame_id: int) -> str:
    """The revision of a frame's boxes in the working copy: a short digest of its visible boxes'
    ``(key, rev)`` pairs.

    Adding, editing or deleting a box of the frame changes it (keys are never reused, an edit
    raises ``rev``); committing a version does not, since the boxes stay visible unchanged.
    """
    pairs = session.execute(
        select(Label.key, Label.rev)
        .where(
            Label.dataset_id == dataset.id,
            Label.frame_id == frame_id,
            visible_at(Label, dataset.working_version),
        )
        .order_by(Label.key)
    ).all()
    text = ",".join(f"{int(key)}:{int(rev)}" for key, rev in pairs)
    return hashlib.sha256(text.encode()).hexdigest()[:FRAME_REVISION_CHARS]


@dataclass(frozen=True)
class FrameBoxes:
    """What ``replace_frame_boxes`` did: the keys of the given boxes, in their order, and counts."""

    keys: list[int]
    kept: int  # given as they were: key, revision and author unchanged
    edited: int  # same key, new revision by the author
    added: int
    deleted: int
    revision: str  # the frame's revision after the write

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _same_box(row: Label, box: BoxInput, *, source: bool) -> bool:
    close = all(
        math.isclose(getattr(row, name), getattr(box, name), rel_tol=0.0, abs_tol=SAME_BOX_TOLERANCE_PX)
        for name in ("x", "y", "w", "h")
    )
    return close and row.cls == box.cls and (not source or row.source == box.source)


def replace_frame_boxes(
    session: Session,
    name: str,
    frame_id: int,
    boxes: Sequence[BoxInput],
    author: str | None,
    expected_revision: str,
    *,
    keys: Sequence[int | None] = (),
) -> FrameBoxes:
    """Make ``boxes`` the frame's boxes in the working copy, if the frame is still at ``expected_revision``.

    ``expected_revision`` is the frame's revision (``frame_revision``) when the work began; if the
    frame changed since, Conflict names it and nothing is written. Only what changed is written:
    ``keys[i]``, where given, is the label ``boxes[i]`` was drawn from, which is edited if the box
    differs from it (class, place or source) and kept as it is otherwise; a box without a key that
    is equal in class and place to a box of the frame keeps that box. Boxes of the frame that no
    given box keeps or edits are deleted, and the rest are added. A kept box keeps its key,
    revision and author; edited and added ones are the ``author``'s. All or nothing.
    """
    if keys and len(keys) != len(boxes):
        raise InvalidInput(f"{len(keys)} keys for {len(boxes)} boxes")
    dataset = lock_dataset(session, name)
    current = frame_revision(session, dataset, frame_id)
    if current != expected_revision:
        raise Conflict(
            f"frame {frame_id} of dataset {name!r} changed since the work on it started "
            f"(revision {expected_revision} -> {current})",
            hint="nothing was written: redo the work on the frame's current boxes",
        )
    size = _frame_sizes(session, dataset, [frame_id]).get(frame_id)
    if size is None:
        raise NotFound(f"frame {frame_id} is not in the working copy of {name!r}")
    checked = []
    for i, box in enumerate(boxes):
        if box.frame_id != frame_id:
            raise InvalidInput(f"box {i}: it is on frame {box.frame_id}, not on frame {frame_id}")
        checked.append(_check_box(box, *size, where=f"box {i}"))
    rows = {
        row.key: row
        for row in session.scalars(
            select(Label).where(
                Label.dataset_id == dataset.id,
                Label.frame_id == frame_id,
                visible_at(Label, dataset.working_version),
            )
        )
    }
    # Box index -> the label it keeps or edits: first by the key it was drawn from, then by equality.
    matched: dict[int, int] = {}
    for i, key in enumerate(keys):
        if key is not None and key in rows and key not in matched.values():
            matched[i] = key
    free = [key for key in sorted(rows) if key not in matched.values()]
    for i, box in enumerate(checked):
        if i in matched:
            continue
        same = next((k for k in free if _same_box(rows[k], box, source=False)), None)
        if same is not None:
            matched[i] = same
            free.remove(same)
    for key in free:
        delete_box(session, name, key, rows[key].rev)
    edited = 0
    for i, key in matched.items():
        box = checked[i]
        if not _same_box(rows[key], box, source=True):
            changes = {f: getattr(box, f) for f in ("cls", "x", "y", "w", "h", "score", "source")}
            edit_box(session, name, key, rows[key].rev, changes, author=author)
            edited += 1
    new = [i for i in range(len(checked)) if i not in matched]
    added = add_boxes(session, name, [checked[i] for i in new], author=author)
    written = {**matched, **dict(zip(new, added, strict=True))}
    return FrameBoxes(
        keys=[written[i] for i in range(len(checked))],
        kept=len(matched) - edited,
        edited=edited,
        added=len(new),
        deleted=len(free),
        revision=frame_revision(session, dataset, frame_id),
    )
