"""What operators found: statistics for the dashboard, the missed-detection review queue, throughput."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cvcycle.api.deps import DbDep
from cvcycle.feedback.feed import event_models, pending_review_frames
from cvcycle.feedback.reports import sample_review_frames
from cvcycle.feedback.stats import DEFAULT_GROUP_BY, feedback_stats, parse_group_by
from cvcycle.feedback.throughput import annotation_throughput
from cvcycle.registry.versions import MODEL_FILTER_HELP

router = APIRouter(prefix="/api/feedback", tags=["feedback"])


@router.get("/stats")
def stats(
    db: DbDep,
    group_by: str = Query(
        ",".join(DEFAULT_GROUP_BY), description="Comma-separated: model_name, model_version, source, day."
    ),
    model: str | None = Query(None, description=MODEL_FILTER_HELP),
) -> list[dict[str, Any]]:
    """False, inaccurate and missed detection counts and rates per group (see `cvcycle stats`)."""
    return [row.to_json() for row in feedback_stats(db, parse_group_by(group_by), model=model)]


@router.get("/models")
def models(db: DbDep) -> list[dict[str, Any]]:
    """Model versions that emitted events, with how many and how many were empty."""
    return event_models(db)


@router.get("/review-frames")
def review_frames(db: DbDep, limit: int = Query(100, ge=1, le=1_000)) -> list[dict[str, Any]]:
    """Frames drawn for missed-detection review that still wait for a verdict, oldest first."""
    return pending_review_frames(db, limit=limit)


class SampleBody(BaseModel):
    model: str = Field(min_length=1, description=f"The model whose empty frames to draw: {MODEL_FILTER_HELP}")
    limit: int = Field(20, ge=1, le=1_000)
    rate: float = Field(1.0, gt=0, le=1)
    min_gap_s: float = Field(0.0, ge=0)
    seed: int = 0


@router.post("/review-frames/sample")
def sample_frames(body: SampleBody, db: DbDep) -> list[dict[str, Any]]:
    """Draw more frames where the model saw nothing (never the same image twice)."""
    drawn = sample_review_frames(
        db,
        body.model,
        limit=body.limit,
        rate=body.rate,
        min_gap_s=body.min_gap_s,
        seed=body.seed,
    )
    return [s.to_json() for s in drawn]


@router.get("/throughput")
def throughput(db: DbDep) -> list[dict[str, Any]]:
    """Finished annotation tasks and labels written per annotator and day."""
    return [row.to_json() for row in annotation_throughput(db)]
