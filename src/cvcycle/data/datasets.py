"""Datasets by name: creating, finding, locking for a write, resolving a reference to a version."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cvcycle.db.models import Dataset, DatasetVersion
from cvcycle.errors import NotFound
from cvcycle.refs import DatasetRef, check_dataset_name, format_ref

DEFAULT_SPLIT_RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}


def _not_found(session: Session, name: str) -> NotFound:
    names = session.scalars(select(Dataset.name).order_by(Dataset.name).limit(20)).all()
    hint = f"known datasets: {', '.join(names)}" if names else "no datasets yet: ingest or synth one first"
    return NotFound(f"dataset {name!r} does not exist", hint=hint)


def get_dataset(session: Session, name: str) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise _not_found(session, name)
    return dataset


def lock_dataset(session: Session, name: str, *, create: bool = False) -> Dataset:
    """The dataset row, locked for this transaction: every write to a dataset takes this lock.

    Writers and commits serialise on it, so a row written "into the working copy" can never land
    in a version that a concurrent commit has just closed. (SQLite serialises writers anyway.)
    """
    check_dataset_name(name)
    dataset = session.scalar(select(Dataset).where(Dataset.name == name).with_for_update())
    if dataset is None:
        if not create:
            raise _not_found(session, name)
        dataset = Dataset(name=name, head=0, next_key=1, split_ratios=dict(DEFAULT_SPLIT_RATIOS))
        session.add(dataset)
        session.flush()
    return dataset


def allocate_keys(dataset: Dataset, count: int) -> int:
    """Reserve ``count`` label/segment keys; returns the first. Needs the dataset lock."""
    first = dataset.next_key
    dataset.next_key = first + count
    return first


@dataclass(frozen=True)
class ResolvedRef:
    dataset: Dataset
    version: int  # the version number to query at; head + 1 for the working copy
    committed: bool

    @property
    def label(self) -> str:
        if self.committed:
            return format_ref(self.dataset.name, self.version)
        return f"{self.dataset.name} (working copy)"


def resolve_ref(session: Session, ref: DatasetRef) -> ResolvedRef:
    """Map a reference to the version number its rows are visible at."""
    dataset = get_dataset(session, ref.name)
    if ref.version is None:
        return ResolvedRef(dataset, dataset.head + 1, committed=False)
    if ref.version == "latest":
        if dataset.head == 0:
            raise NotFound(
                f"dataset {ref.name!r} has no committed version",
                hint=f"commit one with `cvcycle dataset commit {ref.name} -m MESSAGE`",
            )
        return ResolvedRef(dataset, dataset.head, committed=True)
    assert isinstance(ref.version, int)
    exists = session.scalar(
        select(DatasetVersion.id).where(
            DatasetVersion.dataset_id == dataset.id, DatasetVersion.number == ref.version
        )
    )
    if exists is None:
        hint = (
            f"{ref.name} has versions 1..{dataset.head}"
            if dataset.head
            else f"{ref.name} has no committed version yet"
        )
        raise NotFound(f"version {ref.version} of dataset {ref.name!r} does not exist", hint=hint)
    return ResolvedRef(dataset, ref.version, committed=True)
