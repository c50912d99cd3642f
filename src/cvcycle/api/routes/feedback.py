"""What operators found: statistics for the dashboard, the missed-detection review queue, throughput."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cvcycle.api.deps import DbDep, Int64
from cvcycle.feedback.feed import EventModel, ReviewFrame, event_models, pending_review_frames
from cvcycle.feedback.reports import SampledFrame, sample_review_frames
from cvcycle.feedback.stats import DEFAULT_GROUP_BY, StatsRow, feedback_stats
from cvcycle.feedback.throughput import ThroughputRow, annotation_throughput
from cvcycle.registry.versions import MODEL_FILTER_HELP

router = APIRouter(prefix="/api/feedback", tags=["feedback"])


@router.get("/stats")
def stats(
    db: DbDep,
    group_by: str = Query(
        ",".join(DEFAULT_GROUP_BY), description="Comma-separated: model_name, model_version, source, day."
    ),
    model: str | None = Query(None, description=MODEL_FILTER_HELP),
) -> list[StatsRow]:
    """False, inaccurate and missed detection counts and rates per group (see `cvcycle stats`)."""
    return feedback_stats(db, group_by, model=model)


@router.get("/models")
def models(db: DbDep) -> list[EventModel]:
    """Model versions that emitted events, with how many and how many were empty."""
    return event_models(db)


@router.get("/review-frames")
def review_frames(db: DbDep, limit: Int64 = Query(100, ge=1, le=1_000)) -> list[ReviewFrame]:
    """Frames drawn for missed-detection review that still wait for a verdict, oldest first."""
    return pending_review_frames(db, limit=limit)


class SampleBody(BaseModel):
    model: str = Field(min_length=1, description=f"The model whose empty frames to draw: {MODEL_FILTER_HELP}")
    limit: Int64 = Field(20, ge=1, le=1_000)
    rate: float = Field(1.0, gt=0, le=1)
    min_gap_s: float = Field(0.0, ge=0)
    seed: Int64 = 0


@router.post("/review-frames/sample")
def sample_frames(body: SampleBody, db: DbDep) -> list[SampledFrame]:
    """Draw more frames where the model saw nothing (never the same image twice)."""
    return sample_review_frames(
        db,
        body.model,
        limit=body.limit,
        rate=body.rate,
        min_gap_s=body.min_gap_s,
        seed=body.seed,
    )


@router.get("/throughput")
def throughput(db: DbDep) -> list[ThroughputRow]:
    """Finished annotation tasks and labels written per annotator and day."""
    return annotation_throughput(db)
