"""Dataset versions: commit, log, and the diff of any two versions.

See ``cvcycle.db.models`` for the row visibility rule. A commit records version ``head + 1`` with
its statistics and moves ``head``; the statistics are the previous version's plus the change, so
the commit reads only the rows written since the last commit (indexed by ``created_v`` and
``deleted_v``), never the whole dataset. A diff compares two versions, either of which may be the
working copy (``diff_endpoints``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import get_dataset, lock_dataset, resolve_ref
from cvcycle.db.models import Dataset, DatasetFrame, DatasetVersion, Label, Segment, Slice, Tag
from cvcycle.errors import InvalidInput
from cvcycle.records import to_jsonable
from cvcycle.refs import DatasetRef

#: How a diff names the working copy (see ``diff_endpoints``).
WORKING_COPY_NAMES = ("working", "wc")

VersionedModel = type[DatasetFrame] | type[Label] | type[Segment] | type[Tag] | type[Slice]


def visible_at(model: VersionedModel, version: int) -> ColumnElement[bool]:
    """Rows of ``model`` that belong to ``version``."""
    return and_(
        model.created_v <= version,
        or_(model.deleted_v.is_(None), model.deleted_v > version),
    )


def added_between(model: VersionedModel, old: int, new: int) -> ColumnElement[bool]:
    """Rows in ``new`` that were not in ``old`` (old < new)."""
    return and_(
        model.created_v > old,
        model.created_v <= new,
        or_(model.deleted_v.is_(None), model.deleted_v > new),
    )


def removed_between(model: VersionedModel, old: int, new: int) -> ColumnElement[bool]:
    """Rows in ``old`` that are not in ``new`` (old < new)."""
    return and_(model.created_v <= old, model.deleted_v > old, model.deleted_v <= new)


@dataclass(frozen=True)
class VersionInfo:
    """A committed version: its message, author, time and ``stats`` (``totals`` and ``change``)."""

    dataset: str
    version: int
    message: str
    author: str
    created_at: datetime
    stats: dict[str, Any]


@dataclass(frozen=True)
class RowIds:
    """Rows of one table on one side of a diff: how many, and their ids."""

    count: int
    ids: list[int]


@dataclass(frozen=True)
class ClassedRowIds(RowIds):
    """Rows of a table whose rows carry a class: how many, their ids, and how many per class."""

    per_class: dict[str, int]


@dataclass(frozen=True)
class ChangedRow:
    """One row edited between the versions: its stable key, and its row id on either side."""

    key: int
    old_id: int
    new_id: int


@dataclass(frozen=True)
class ChangedRows:
    count: int
    items: list[ChangedRow]


@dataclass(frozen=True)
class RowsDiff:
    """Frames or tags added and removed."""

    added: RowIds
    removed: RowIds


@dataclass(frozen=True)
class KeyedRowsDiff:
    """Labels or segments added, removed, and changed (the same key with another row)."""

    added: ClassedRowIds
    removed: ClassedRowIds
    changed: ChangedRows


class DatasetDiff(BaseModel):
    """What changed from version ``from`` to ``to`` of a dataset (either may be the working copy)."""

    model_config = ConfigDict(frozen=True, validate_by_name=True)

    dataset: str
    old: int = Field(alias="from")
    new: int = Field(alias="to")
    frames: RowsDiff
    labels: KeyedRowsDiff
    segments: KeyedRowsDiff
    tags: RowsDiff


def _class_counts(session: Session, model: type[Label] | type[Segment], where: Any) -> Counter[str]:
    rows = session.execute(select(model.cls, func.count()).where(where).group_by(model.cls))
    return Counter({cls: int(n) for cls, n in rows})


def _count(session: Session, model: VersionedModel, where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(where)) or 0)


@dataclass(frozen=True)
class CountChange:
    added: int
    removed: int


@dataclass(frozen=True)
class ClassChange:
    """Rows added and removed, per class."""

    added: dict[str, int]
    removed: dict[str, int]


@dataclass(frozen=True)
class ChangeStats:
    """What changed between two versions, by count (the ``change`` a commit records in its stats)."""

    frames: CountChange
    tags: CountChange
    slices: CountChange
    labels: ClassChange
    segments: ClassChange

    @property
    def empty(self) -> bool:
        counts = (self.frames, self.tags, self.slices)
        classed = (self.labels, self.segments)
        return not any(c.added or c.removed for c in counts) and not any(
            sum(c.added.values()) or sum(c.removed.values()) for c in classed
        )


def _change_stats(session: Session, dataset_id: int, old: int, new: int) -> ChangeStats:
    """Counts of what changed between ``old`` and ``new``: reads only the changed rows."""

    def counted(model: VersionedModel) -> CountChange:
        mine = model.dataset_id == dataset_id
        return CountChange(
            added=_count(session, model, and_(mine, added_between(model, old, new))),
            removed=_count(session, model, and_(mine, removed_between(model, old, new))),
        )

    def classed(model: type[Label] | type[Segment]) -> ClassChange:
        mine = model.dataset_id == dataset_id
        return ClassChange(
            added=dict(_class_counts(session, model, and_(mine, added_between(model, old, new)))),
            removed=dict(_class_counts(session, model, and_(mine, removed_between(model, old, new)))),
        )

    return ChangeStats(
        frames=counted(DatasetFrame),
        tags=counted(Tag),
        slices=counted(Slice),
        labels=classed(Label),
        segments=classed(Segment),
    )


def _apply_change(previous: dict[str, Any], change: ChangeStats) -> dict[str, Any]:
    counts = {"frames": change.frames, "tags": change.tags, "slices": change.slices}
    totals = {name: previous.get(name, 0) + c.added - c.removed for name, c in counts.items()}
    for name, classes in (("labels", change.labels), ("segments", change.segments)):
        per_class = Counter(previous.get(f"{name}_per_class", {}))
        per_class.update(classes.added)
        per_class.subtract(classes.removed)
        clean = {cls: n for cls, n in sorted(per_class.items()) if n}
        totals[name] = sum(clean.values())
        totals[f"{name}_per_class"] = clean
    return totals


def commit_version(session: Session, name: str, message: str, author: str = "") -> VersionInfo:
    """Make the working copy of ``name`` its next version. Raises InvalidInput when nothing changed."""
    dataset = lock_dataset(session, name)
    new = dataset.head + 1
    # Rows created and closed inside the same working copy were never in any version.
    for model in (DatasetFrame, Label, Segment, Tag, Slice):
        session.execute(
            delete(model).where(
                model.dataset_id == dataset.id, model.created_v == new, model.deleted_v == new
            )
        )
    change = _change_stats(session, dataset.id, dataset.head, new)
    if change.empty:
        raise InvalidInput(
            f"nothing to commit in dataset {name!r}: the working copy equals version {dataset.head}",
            hint="ingest, synth, import or label something first",
        )
    previous: dict[str, Any] = {}
    if dataset.head:
        previous = (
            session.scalar(
                select(DatasetVersion.stats).where(
                    DatasetVersion.dataset_id == dataset.id, DatasetVersion.number == dataset.head
                )
            )
            or {}
        )
    stats = {"totals": _apply_change(previous.get("totals", {}), change), "change": to_jsonable(change)}
    version = _record_version(session, dataset.id, new, message, author, stats)
    dataset.head = new
    session.flush()
    return VersionInfo(dataset.name, new, message, author, version.created_at, stats)


def _record_version(
    session: Session, dataset_id: int, number: int, message: str, author: str, stats: dict[str, Any]
) -> DatasetVersion:
    version = DatasetVersion(
        dataset_id=dataset_id, number=number, message=message, author=author, stats=stats
    )
    session.add(version)
    session.flush()
    return version


def list_versions(session: Session, name: str) -> list[VersionInfo]:
    dataset = get_dataset(session, name)
    rows = session.scalars(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset.id)
        .order_by(DatasetVersion.number.desc())
    )
    return [VersionInfo(dataset.name, v.number, v.message, v.author, v.created_at, v.stats) for v in rows]


def working_copy_changes(session: Session, name: str) -> ChangeStats:
    """What a commit of ``name`` would record, without committing."""
    dataset = get_dataset(session, name)
    return _change_stats(session, dataset.id, dataset.head, dataset.head + 1)


def _ids(session: Session, column: Any, where: Any) -> list[int]:
    return [int(i) for i in session.scalars(select(column).where(where).order_by(column))]


def _classed(rows: dict[int, tuple[int, str]]) -> ClassedRowIds:
    return ClassedRowIds(
        count=len(rows),
        ids=sorted(int(i) for i, _ in rows.values()),
        per_class=dict(sorted(Counter(c for _, c in rows.values()).items())),
    )


def _diff_keyed(
    session: Session, model: type[Label] | type[Segment], dataset_id: int, old: int, new: int, backwards: bool
) -> KeyedRowsDiff:
    """Added, removed and changed rows of a table whose rows carry a stable ``key`` across edits.

    ``old`` < ``new``; ``backwards`` reports the change from ``new`` to ``old`` instead.
    """
    mine = model.dataset_id == dataset_id
    columns = (model.key, model.id, model.cls)
    added = {
        k: (i, c) for k, i, c in session.execute(select(*columns).where(mine, added_between(model, old, new)))
    }
    removed = {
        k: (i, c)
        for k, i, c in session.execute(select(*columns).where(mine, removed_between(model, old, new)))
    }
    changed_keys = sorted(set(added) & set(removed))
    before, after = (added, removed) if backwards else (removed, added)
    changed = [ChangedRow(int(k), int(before[k][0]), int(after[k][0])) for k in changed_keys]
    for key in changed_keys:
        del added[key]
        del removed[key]
    if backwards:
        added, removed = removed, added
    return KeyedRowsDiff(_classed(added), _classed(removed), ChangedRows(len(changed), changed))


def _diff_plain(
    session: Session, model: VersionedModel, column: Any, dataset_id: int, old: int, new: int, backwards: bool
) -> RowsDiff:
    """Added and removed ids (``column``) of a table: ``old`` < ``new``, reported backwards if asked."""
    mine = model.dataset_id == dataset_id
    added = _ids(session, column, and_(mine, added_between(model, old, new)))
    removed = _ids(session, column, and_(mine, removed_between(model, old, new)))
    if backwards:
        added, removed = removed, added
    return RowsDiff(RowIds(len(added), added), RowIds(len(removed), removed))


def diff_endpoints(session: Session, dataset: Dataset, old: int | str, new: int | str) -> tuple[int, int]:
    """The two version numbers a diff compares, checked to exist and to differ.

    A side is a version number (or its digits), or the working copy: ``working`` (or ``wc``), or
    ``head + 1``, the number its commit will take and the number the working copy diffs as.
    """

    def number(side: int | str) -> int:
        if isinstance(side, int):
            return side
        if side in WORKING_COPY_NAMES:
            return dataset.head + 1
        if not side.isdigit():
            raise InvalidInput(
                f"version {side!r} is not a number", hint="give N, or 'working' for the working copy"
            )
        return int(side)

    sides = number(old), number(new)
    if sides[0] == sides[1]:
        raise InvalidInput(f"cannot diff version {sides[0]} with itself", hint="give two different versions")
    for side in sides:
        if side != dataset.head + 1:
            resolve_ref(session, DatasetRef(dataset.name, side))
    return sides


def diff_versions(session: Session, name: str, old: int | str, new: int | str) -> DatasetDiff:
    """Frames, labels, segments and tags added, removed or changed from version ``old`` to ``new``.

    Either side may be the working copy (see ``diff_endpoints``). Reads only the rows of the change.
    """
    dataset = get_dataset(session, name)
    old, new = diff_endpoints(session, dataset, old, new)
    # Diffing backwards: what the newer version added, the older one lacks.
    backwards = old > new
    low, high = min(old, new), max(old, new)
    return DatasetDiff(
        dataset=name,
        old=old,
        new=new,
        frames=_diff_plain(session, DatasetFrame, DatasetFrame.frame_id, dataset.id, low, high, backwards),
        labels=_diff_keyed(session, Label, dataset.id, low, high, backwards),
        segments=_diff_keyed(session, Segment, dataset.id, low, high, backwards),
        tags=_diff_plain(session, Tag, Tag.id, dataset.id, low, high, backwards),
    )
