"""The datasets at a glance: every dataset with its head, one dataset's versions, slices and summary,
and the slices of a version with their frame counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cvcycle.data.datasets import get_dataset, resolve_ref
from cvcycle.data.selection import Selection, resolve_selection
from cvcycle.data.slices import list_slices
from cvcycle.data.snapshot import count_frames, show_dataset
from cvcycle.data.versions import list_versions, working_copy_changes
from cvcycle.db.models import Dataset, DatasetVersion
from cvcycle.refs import DatasetRef


def list_datasets(session: Session) -> list[dict[str, Any]]:
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
        {
            "name": dataset.name,
            "head": dataset.head,
            "created_at": dataset.created_at.isoformat(),
            "message": version.message if version else None,
            "stats": version.stats if version else None,
        }
        for dataset, version in rows
    ]


def dataset_overview(session: Session, name: str) -> dict[str, Any]:
    """A dataset: summary of its newest version (or working copy), versions, slices, pending change."""
    dataset = get_dataset(session, name)
    ref = DatasetRef(name, dataset.head) if dataset.head else DatasetRef(name)
    return {
        "name": name,
        "head": dataset.head,
        "summary": show_dataset(session, ref),
        "versions": [v.to_json() for v in list_versions(session, name)],
        "slices": [s.to_json() for s in list_slices(session, resolve_ref(session, ref))],
        "working_copy": working_copy_changes(session, name),
    }


def slices_with_counts(session: Session, dataset: str | DatasetRef) -> list[dict[str, Any]]:
    """The slices visible at a version (``home``, ``home@3``, ``home@latest``) with their ``frame_count``."""
    ref = resolve_selection(session, dataset).ref
    return [
        {**spec.to_json(), "frame_count": count_frames(session, Selection(ref, spec))}
        for spec in list_slices(session, ref)
    ]
