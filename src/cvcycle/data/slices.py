"""Slices: named, versioned selections of frames, and the train/val/test split.

A slice is either a filter over frame and media attributes and tags, or an explicit list of frame
ids. Filters are clauses joined by ``,`` (all must hold), each ``key=value``, ``key!=value`` or
``key=a|b`` (any of). Keys: ``split``, ``source``, ``kind`` (video/image), ``tag`` (on the frame
or on its medium), ``class`` (the frame has a box of that class), ``media`` (sha256 prefix) and
any other key is a media attribute (``lighting=night``, ``dogs=yes``).

The split of a medium is chosen once, when it first joins a dataset, and never changes, so the
frames of one video never straddle splits and a version's splits are reproducible. The choice is
the split furthest below its target share (ties go to val, then test): small datasets get a
validation and a test medium early, large ones converge to the target ratios. Pure hashing would
leave a four-clip dataset without a validation clip about half the time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import ResolvedRef, get_dataset, lock_dataset
from cvcycle.data.versions import visible_at
from cvcycle.db.models import Dataset, DatasetFrame, DatasetMedia, Frame, Label, Media, Slice, Tag
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.refs import is_valid_name

SPLITS = ("train", "val", "test")
TIE_ORDER = ("val", "test", "train")
BUILTIN_SLICES = (*SPLITS, "all")
# (frame id, media id, split) of the frames a slice selects.
FramesQuery = Select[int, int, str]
_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(!=|=)\s*(.+?)\s*$")


def assign_split(session: Session, dataset: Dataset, media_id: int) -> str:
    """The split of a medium in a dataset: the stored one, or a new choice recorded now."""
    existing = session.scalar(
        select(DatasetMedia.split).where(
            DatasetMedia.dataset_id == dataset.id, DatasetMedia.media_id == media_id
        )
    )
    if existing is not None:
        return existing
    counts = dict(
        session.execute(
            select(DatasetMedia.split, func.count())
            .where(DatasetMedia.dataset_id == dataset.id)
            .group_by(DatasetMedia.split)
        ).all()
    )
    total = sum(counts.values()) + 1
    ratios: dict[str, float] = dataset.split_ratios

    def deficit(split: str) -> tuple[float, int]:
        # Ties go to val, then test: a dataset's third medium already gives a validation split.
        return (ratios.get(split, 0.0) * total - counts.get(split, 0), -TIE_ORDER.index(split))

    split = max(SPLITS, key=deficit)
    session.add(DatasetMedia(dataset_id=dataset.id, media_id=media_id, split=split))
    session.flush()
    return split


@dataclass(frozen=True)
class Clause:
    key: str
    values: tuple[str, ...]
    negate: bool


def parse_filter(text: str) -> list[Clause]:
    """Parse ``lighting=night,tag=hard_negative``; InvalidInput names the clause that is wrong."""
    clauses = []
    for part in text.split(","):
        match = _CLAUSE.match(part)
        if not match:
            raise InvalidInput(
                f"slice filter clause {part.strip()!r} is not key=value",
                hint="write clauses like lighting=night, source=cam-3, tag=hard_negative, split=val",
            )
        key, op, value = match.groups()
        values = tuple(v.strip() for v in value.split("|"))
        if not all(values):
            raise InvalidInput(f"slice filter clause {part.strip()!r} has an empty value")
        if key == "split" and not set(values) <= set(SPLITS):
            raise InvalidInput(f"slice filter clause {part.strip()!r}: split is one of {', '.join(SPLITS)}")
        clauses.append(Clause(key, values, op == "!="))
    return clauses


def _clause_condition(clause: Clause, dataset_id: int, version: int) -> ColumnElement[bool]:
    values = list(clause.values)
    condition: ColumnElement[bool]
    if clause.key == "split":
        condition = DatasetMedia.split.in_(values)
    elif clause.key == "source":
        condition = Media.source.in_(values)
    elif clause.key == "kind":
        condition = Media.kind.in_(values)
    elif clause.key == "media":
        condition = or_(*(Media.sha256.startswith(v) for v in values))
    elif clause.key == "tag":
        # Uncorrelated IN subqueries: evaluated once, whatever plan the database picks.
        tags = select(Tag).where(Tag.dataset_id == dataset_id, Tag.name.in_(values), visible_at(Tag, version))
        condition = or_(
            Frame.id.in_(tags.with_only_columns(Tag.frame_id).where(Tag.frame_id.is_not(None))),
            Frame.media_id.in_(tags.with_only_columns(Tag.media_id).where(Tag.media_id.is_not(None))),
        )
    elif clause.key == "class":
        condition = Frame.id.in_(
            select(Label.frame_id).where(
                Label.dataset_id == dataset_id, Label.cls.in_(values), visible_at(Label, version)
            )
        )
    else:
        condition = Media.attributes[clause.key].as_string().in_(values)
    return not_(condition) if clause.negate else condition


@dataclass(frozen=True)
class SliceSpec:
    """What a slice name or expression means at one version; ``clauses`` is ``filter`` parsed."""

    name: str
    kind: str  # builtin | filter | list
    filter: str | None
    frame_ids: list[int] | None
    clauses: tuple[Clause, ...] = ()

    @property
    def info(self) -> SliceInfo:
        frames = None if self.frame_ids is None else len(self.frame_ids)
        return SliceInfo(self.name, self.kind, self.filter, frames)


@dataclass(frozen=True)
class SliceInfo:
    """A slice as listings show it: its ``filter``, or how many ``frames`` it lists (None otherwise)."""

    name: str
    kind: str  # builtin | filter | list
    filter: str | None
    frames: int | None


def frames_query(ref: ResolvedRef, spec: SliceSpec) -> FramesQuery:
    """A query of (frame id, media id, split) for the frames of a version that a slice selects."""
    dataset_id = ref.dataset.id
    query: FramesQuery = (
        select(Frame.id, Frame.media_id, DatasetMedia.split)
        .join(DatasetFrame, and_(DatasetFrame.frame_id == Frame.id, DatasetFrame.dataset_id == dataset_id))
        .join(Media, Media.id == Frame.media_id)
        .join(DatasetMedia, and_(DatasetMedia.media_id == Media.id, DatasetMedia.dataset_id == dataset_id))
        .where(visible_at(DatasetFrame, ref.version))
    )
    for clause in spec.clauses:
        query = query.where(_clause_condition(clause, dataset_id, ref.version))
    if spec.frame_ids is not None:
        query = query.where(Frame.id.in_(spec.frame_ids))
    return query


def _filter_spec(name: str, kind: str, text: str) -> SliceSpec:
    return SliceSpec(name, kind, text, None, tuple(parse_filter(text)))


def _stored_slice(session: Session, dataset_id: int, name: str, version: int) -> Slice | None:
    return session.scalar(
        select(Slice).where(Slice.dataset_id == dataset_id, Slice.name == name, visible_at(Slice, version))
    )


def slice_spec(session: Session, ref: ResolvedRef, text: str | None) -> SliceSpec:
    """Resolve a slice argument: None or ``all``, a split, a stored slice, or an ad-hoc filter.

    Filters are parsed here, once; ``cvcycle.data.selection`` pairs the result with its version.
    """
    if text is None or text == "all":
        return SliceSpec("all", "builtin", None, None)
    if text in SPLITS:
        return _filter_spec(text, "builtin", f"split={text}")
    if "=" in text:
        return _filter_spec(text, "filter", text)
    stored = _stored_slice(session, ref.dataset.id, text, ref.version)
    if stored is None:
        names = [s.name for s in list_slices(session, ref)]
        raise NotFound(
            f"slice {text!r} does not exist in {ref.label}",
            hint=f"slices there: {', '.join(names)}; or give a filter such as lighting=night",
        )
    if stored.kind == "filter":
        return _filter_spec(text, "filter", stored.definition["filter"])
    return SliceSpec(text, "list", None, [int(i) for i in stored.definition["frame_ids"]])


def save_slice(
    session: Session,
    name: str,
    slice_name: str,
    *,
    filter: str | None = None,
    frame_ids: list[int] | None = None,
) -> SliceSpec:
    """Create or replace a named slice in the working copy of a dataset."""
    if not is_valid_name(slice_name) or slice_name in BUILTIN_SLICES:
        raise InvalidInput(
            f"slice name {slice_name!r} is not allowed",
            hint=f"use letters, digits, '.', '_' or '-'; {', '.join(BUILTIN_SLICES)} are built in",
        )
    if (filter is None) == (frame_ids is None):
        raise InvalidInput(
            "a slice is either a filter or a list of frames", hint="give exactly one of the two"
        )
    dataset = lock_dataset(session, name)
    version = dataset.working_version
    definition: dict[str, Any]
    if filter is not None:
        parse_filter(filter)
        kind, definition = "filter", {"filter": filter}
    else:
        assert frame_ids is not None
        kind, definition = "list", {"frame_ids": sorted(set(frame_ids))}
    old = _stored_slice(session, dataset.id, slice_name, version)
    if old is not None:
        if old.kind == kind and old.definition == definition:
            return slice_spec(session, ResolvedRef(dataset, version, False), slice_name)
        old.deleted_v = version
    session.add(
        Slice(dataset_id=dataset.id, name=slice_name, kind=kind, definition=definition, created_v=version)
    )
    session.flush()
    return slice_spec(session, ResolvedRef(dataset, version, False), slice_name)


def delete_slice(session: Session, name: str, slice_name: str) -> None:
    dataset = lock_dataset(session, name)
    old = _stored_slice(session, dataset.id, slice_name, dataset.working_version)
    if old is None:
        raise NotFound(f"slice {slice_name!r} does not exist in the working copy of {name!r}")
    old.deleted_v = dataset.working_version


def list_slices(session: Session, ref: ResolvedRef) -> list[SliceSpec]:
    """Built-in and stored slices visible at the version of ``ref``."""
    get_dataset(session, ref.dataset.name)
    specs = [slice_spec(session, ref, name) for name in BUILTIN_SLICES]
    stored = session.scalars(
        select(Slice.name)
        .where(Slice.dataset_id == ref.dataset.id, visible_at(Slice, ref.version))
        .order_by(Slice.name)
    )
    specs.extend(slice_spec(session, ref, name) for name in stored)
    return specs
