"""The loop as a whole: its timeline of dataset versions, runs, gate reports and deployments."""

from __future__ import annotations

from fastapi import APIRouter

from cvcycle.api.deps import DbDep
from cvcycle.registry.timeline import TimelineItem, loop_timeline

router = APIRouter(prefix="/api", tags=["loop"])


@router.get("/timeline")
def timeline(db: DbDep) -> list[TimelineItem]:
    """Every step of the loop on record, oldest first."""
    return loop_timeline(db)
