"""Annotation: tasks (mine / all), assignments and their drafts, submitting, review, agreement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cvcycle.annotate.agreement import Agreement
from cvcycle.annotate.assignments import get_assignment, open_assignment, save_draft
from cvcycle.annotate.documents import Draft
from cvcycle.annotate.records import AssignmentRecord, TaskDetail, TaskSummary
from cvcycle.annotate.review import (
    ReviewItem,
    SpotCheck,
    review_assignment,
    review_queue,
    submit_assignment,
    task_agreement,
)
from cvcycle.annotate.tasks import create_task, get_task, list_tasks, reopen_task
from cvcycle.api.deps import DbDep, Int64, SettingsDep, StoreDep

router = APIRouter(prefix="/api", tags=["annotation"])

Name = Field(min_length=1, max_length=200)


class NewTask(BaseModel):
    dataset: str = Field(min_length=1, max_length=200)
    frame_id: Int64 | None = None
    media_id: Int64 | None = None
    annotators: list[str] = Field(default_factory=list, max_length=10)
    overlap: int = Field(default=1, ge=1, le=10)


class Taker(BaseModel):
    annotator: str = Name


class Reopener(BaseModel):
    by: str = Name


class DraftSave(BaseModel):
    rev: Int64 = Field(ge=1)
    author: str = Name
    draft: Draft


class Submission(BaseModel):
    rev: Int64 = Field(ge=1)
    author: str = Name


class Verdict(BaseModel):
    verdict: Literal["accept", "reject"]
    reviewer: str = Name
    comment: str = Field(default="", max_length=5_000)


@dataclass(frozen=True)
class TaskList:
    tasks: list[TaskSummary]


@dataclass(frozen=True)
class ReviewQueue:
    items: list[ReviewItem]


@router.get("/tasks")
def tasks(db: DbDep, annotator: str | None = None, status: str | None = None) -> TaskList:
    """All annotate tasks, or those of ``annotator`` ("my tasks"), newest first."""
    return TaskList(list_tasks(db, status, annotator, newest_first=True, limit=500))


@router.post("/tasks", status_code=201)
def new_task(body: NewTask, db: DbDep, store: StoreDep) -> TaskDetail:
    return create_task(
        db,
        body.dataset,
        frame_id=body.frame_id,
        media_id=body.media_id,
        annotators=body.annotators,
        overlap=body.overlap,
        store=store,
    )


@router.get("/tasks/{task_id}")
def task(task_id: Int64, db: DbDep) -> TaskDetail:
    return get_task(db, task_id)


@router.post("/tasks/{task_id}/reopen")
def reopen(task_id: Int64, body: Reopener, db: DbDep) -> TaskSummary:
    """Restart an open task from its frame's current boxes (after 409: the frame changed under the work)."""
    return reopen_task(db, task_id, body.by)


@router.post("/tasks/{task_id}/assignments")
def take_task(task_id: Int64, body: Taker, db: DbDep, store: StoreDep) -> AssignmentRecord:
    """The annotator's assignment on the task (taken now if there is a free place)."""
    return open_assignment(db, task_id, body.annotator, store)


@router.get("/tasks/{task_id}/agreement")
def agreement(task_id: Int64, db: DbDep) -> Agreement:
    return task_agreement(db, task_id)


@router.get("/assignments/{assignment_id}")
def assignment(assignment_id: Int64, db: DbDep) -> AssignmentRecord:
    return get_assignment(db, assignment_id)


@router.put("/assignments/{assignment_id}/draft")
def save(assignment_id: Int64, body: DraftSave, db: DbDep) -> AssignmentRecord:
    """Save the draft made on revision ``rev``; 409 if someone saved since (nothing is overwritten)."""
    return save_draft(db, assignment_id, body.rev, body.draft, body.author)


@router.post("/assignments/{assignment_id}/submit")
def submit(assignment_id: Int64, body: Submission, db: DbDep, settings: SettingsDep) -> AssignmentRecord:
    spot_check = SpotCheck(settings.spot_check_share, settings.spot_check_seed)
    return submit_assignment(db, assignment_id, body.rev, body.author, spot_check)


@router.post("/assignments/{assignment_id}/review")
def review(assignment_id: Int64, body: Verdict, db: DbDep) -> AssignmentRecord:
    return review_assignment(db, assignment_id, body.verdict, body.reviewer, body.comment)


@router.get("/reviews")
def reviews(db: DbDep) -> ReviewQueue:
    """Tasks whose submitted work waits for a reviewer, with the annotators' agreement."""
    return ReviewQueue(review_queue(db))
