"""The datasets at a glance: every dataset with its head, one dataset's versions, slices and summary,
and the slices of a version with their frame counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import get_dataset, resolve_ref
from cvcycle.data.selection import Selection, resolve_selection
from cvcycle.data.slices import SliceInfo, list_slices
from cvcycle.data.snapshot import DatasetSummary, count_frames, show_dataset
from cvcycle.data.versions import ChangeStats, VersionInfo, list_versions, working_copy_changes
from cvcycle.db.models import Dataset, DatasetVersion
from cvcycle.records import fields_of
from cvcycle.refs import DatasetRef


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset in the list: its head, and the newest commit's message and statistics (None before one)."""

    name: str
    head: int
    created_at: datetime
    message: str | None
    stats: dict[str, Any] | None


@dataclass(frozen=True)
class DatasetOverview:
    """One dataset: its newest version's summary, its versions, slices and uncommitted change."""

    name: str
    head: int
    summary: DatasetSummary
    versions: list[VersionInfo]
    slices: list[SliceInfo]
    working_copy: ChangeStats  # what a commit would record now


@dataclass(frozen=True)
class SliceCount(SliceInfo):
    """A slice with how many frames it selects."""

    frame_count: int


def list_datasets(session: Session) -> list[DatasetEntry]:
    """Every dataset by name: its head version and the newest commit's message and statistics."""
    newest = (
        select(DatasetVersion.dataset_id, func.max(DatasetVersion.number).label("number"))
        .group_by(DatasetVersion.dataset_id)
        .subquery()
    )
    rows = session.execute(
        select(Dataset, DatasetVersion)
        .outerjoin(newest, newest.c.dataset_id == Dataset.id)
        .outerjoin(
            DatasetVersion,
            (DatasetVersion.dataset_id == Dataset.id) & (DatasetVersion.number == newest.c.number),
        )
        .order_by(Dataset.name)
    )
    return [
        DatasetEntry(
            name=dataset.name,
            head=dataset.head,
            created_at=dataset.created_at,
            message=version.message if version else None,
            stats=version.stats if version else None,
        )
        for dataset, version in rows
    ]


def dataset_overview(session: Session, name: str) -> DatasetOverview:
    """A dataset: summary of its newest version (or working copy), versions, slices, pending change."""
    dataset = get_dataset(session, name)
    ref = DatasetRef(name, dataset.head) if dataset.head else DatasetRef(name)
    return DatasetOverview(
        name=name,
        head=dataset.head,
        summary=show_dataset(session, ref),
        versions=list_versions(session, name),
        slices=[s.info for s in list_slices(session, resolve_ref(session, ref))],
        working_copy=working_copy_changes(session, name),
    )


def slices_with_counts(session: Session, dataset: str | DatasetRef) -> list[SliceCount]:
    """The slices visible at a version (``home``, ``home@3``, ``home@latest``) with their ``frame_count``."""
    ref = resolve_selection(session, dataset).ref
    return [
        SliceCount(**fields_of(spec.info), frame_count=count_frames(session, Selection(ref, spec)))
        for spec in list_slices(session, ref)
    ]
