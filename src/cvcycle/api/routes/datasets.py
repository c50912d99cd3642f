"""Datasets: the list, one dataset's versions, slices and summary, and the diff of two versions."""

from __future__ import annotations

from fastapi import APIRouter, Query

from cvcycle.api.deps import DbDep, Int64
from cvcycle.data.catalog import DatasetEntry, DatasetOverview, dataset_overview, list_datasets
from cvcycle.data.versions import DatasetDiff, diff_versions

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


@router.get("")
def datasets(db: DbDep) -> list[DatasetEntry]:
    with db.read() as session:
        return list_datasets(session)


@router.get("/{name}")
def dataset(name: str, db: DbDep) -> DatasetOverview:
    with db.read() as session:
        return dataset_overview(session, name)


@router.get("/{name}/diff")
def diff(
    name: str,
    db: DbDep,
    old: Int64 = Query(..., alias="from", ge=1),
    new: Int64 = Query(..., alias="to", ge=1),
) -> DatasetDiff:
    """What changed from version ``from`` to ``to`` (head + 1 is the working copy)."""
    with db.read() as session:
        return diff_versions(session, name, old, new)
