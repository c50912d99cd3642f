"""Training runs: the newest first, and one run in full with a link to its MLflow run."""

from __future__ import annotations

from fastapi import APIRouter, Query

from cvcycle.api.deps import DbDep, Int64, SettingsDep
from cvcycle.train.service import RunDetail, RunSummary, list_runs, show_run

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("")
def runs(
    db: DbDep,
    model: str | None = Query(
        None, description="NAME for its runs; NAME@N, NAME@latest or NAME:ALIAS for the run behind it."
    ),
    limit: Int64 = Query(100, ge=1, le=1_000),
) -> list[RunSummary]:
    with db.read() as session:
        return list_runs(session, model, limit)


@router.get("/{run_id}")
def run(run_id: Int64, db: DbDep, settings: SettingsDep) -> RunDetail:
    """Everything the run recorded; ``tracker_url`` opens it in the MLflow UI when one is configured."""
    with db.read() as session:
        return show_run(session, run_id, settings)
