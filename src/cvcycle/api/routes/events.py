"""Production events: the feed (paged, and live as server-sent events), upload, one event, reports."""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from cvcycle.api.deps import DbDep, Int64, StoreDep
from cvcycle.api.live import feed_messages, notify_feed
from cvcycle.boxes import MAX_CLASS_NAME_LENGTH, Box
from cvcycle.db import INT64_MAX
from cvcycle.errors import InvalidInput
from cvcycle.feedback.events import PushResult, push_events
from cvcycle.feedback.feed import (
    EventDetail,
    FeedItem,
    event_detail,
    event_image,
    feed_page,
    newest_event_id,
    newest_report_id,
)
from cvcycle.feedback.reports import DEFAULT_DATASET, ReportRecord, report_event
from cvcycle.records import to_jsonable

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("")
def list_feed(
    db: DbDep,
    limit: Int64 = Query(200, ge=1, le=20_000),
    before_id: Int64 | None = Query(None, ge=1),
) -> list[FeedItem]:
    """The newest events first (older than ``before_id`` when given), each with its verdicts."""
    return feed_page(db, limit=limit, before_id=before_id)


@router.get("/stream", response_class=StreamingResponse)
async def stream_feed(
    request: Request,
    db: DbDep,
    after_id: Int64 | None = Query(
        None, ge=0, description="Send events after this id; default: from now on."
    ),
    after_report_id: Int64 | None = Query(
        None, ge=0, description="Send verdicts on events after this report id; default: from now on."
    ),
    max_events: Int64 | None = Query(None, ge=1, description="Close the stream after this many messages."),
) -> StreamingResponse:
    """Server-sent events: an ``event`` message per new event (its JSON as data, its id as the id)
    and a ``verdict`` message per new report on an event, so every operator sees what others did."""
    last_event_id = request.headers.get("last-event-id", "")
    start = int(last_event_id) if _is_int64(last_event_id) else after_id
    if start is None:
        start = await run_in_threadpool(newest_event_id, db)
    report_start = after_report_id
    if report_start is None:
        report_start = await run_in_threadpool(newest_report_id, db)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    messages = feed_messages(request, db, start, report_start, max_events)
    return StreamingResponse(messages, media_type="text/event-stream", headers=headers)


def _is_int64(text: str) -> bool:
    """Whether ``text`` is a non-negative integer the database can hold (a header's value)."""
    return len(text) <= 19 and text.isascii() and text.isdigit() and int(text) <= INT64_MAX


async def _read_upload(request: Request) -> bytes:
    """The request body (or its ``file`` part for a form upload).

    Its size and content type were checked on the way in (:mod:`cvcycle.api.safety`).
    """
    body = await request.body()
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        return body

    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, replay()).parse()
    except MultiPartException as exc:
        raise InvalidInput(f"file: the multipart form does not parse ({exc.message})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidInput("file: a form upload needs the events file in a part named 'file'")
    return await upload.read()


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "One event per line (see `cvcycle events push --help` for the fields).",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@dataclass(frozen=True)
class PushRefused(PushResult):
    """The 422 answer to an upload of which no line could be kept: the error and the push's figures."""

    error: str
    hint: str | None


@router.post(
    "",
    openapi_extra=UPLOAD_BODY,
    response_model=PushResult,
    responses={
        422: {
            "model": PushRefused,
            "description": "No line could be kept. (A malformed upload gets only `error` and `hint`.)",
        }
    },
)
async def upload_events(request: Request, db: DbDep, store: StoreDep) -> PushResult | JSONResponse:
    """Store events sent as JSON Lines (the body, or a form's ``file``); snapshots as base64.

    Answers what was kept, the duplicates and the bad lines; 422 when no line could be kept.
    """
    data = await _read_upload(request)
    # Lines split as a file read in text mode splits them, so line numbers match `events push`.
    lines = io.StringIO(data.decode("utf-8", errors="replace"), newline=None)
    result = await run_in_threadpool(push_events, db, store, lines, allow_paths=False)
    if result.kept:
        notify_feed(request)
    if result.failed:
        refused = PushRefused(**vars(result), error=result.failure, hint=None)
        return JSONResponse(to_jsonable(refused), status_code=422)
    return result


@router.get("/{event_id}")
def get_event(event_id: Int64, db: DbDep) -> EventDetail:
    """One event with the reports on it and the classes its model knows."""
    return event_detail(db, event_id)


@router.get("/{event_id}/image", response_class=Response)
def get_event_image(event_id: Int64, db: DbDep, store: StoreDep) -> Response:
    """The event's image as JPEG (its snapshot, or the frame it refers to)."""
    key, size = event_image(db, event_id)
    headers = {"Cache-Control": "private, max-age=86400, immutable"}
    return Response(store.get_bytes(key, size), media_type="image/jpeg", headers=headers)


class BoxBody(BaseModel):
    """A box in pixels of the event's image: top-left x, y and a positive width and height."""

    cls: str = Field(min_length=1, max_length=MAX_CLASS_NAME_LENGTH)
    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    w: float = Field(gt=0, allow_inf_nan=False)
    h: float = Field(gt=0, allow_inf_nan=False)


class ReportBody(BaseModel):
    type: Literal["confirmed", "false_detection", "inaccurate_detection", "missed_detection"]
    detection: Int64 | None = Field(None, ge=0, description="Index into the event's detections.")
    box: BoxBody | None = Field(None, description="The right box: for inaccurate and missed detections.")
    operator: str = Field("", max_length=200)
    comment: str = Field("", max_length=5_000)
    dataset: str = DEFAULT_DATASET


@router.post("/{event_id}/reports", status_code=201)
def post_report(event_id: Int64, body: ReportBody, db: DbDep, request: Request) -> ReportRecord:
    """An operator's verdict; anything but ``confirmed`` opens (or joins) an annotation task."""
    box = Box(body.box.cls, body.box.x, body.box.y, body.box.w, body.box.h) if body.box else None
    record = report_event(
        db,
        event_id,
        body.type,
        box=box,
        detection=body.detection,
        operator=body.operator,
        comment=body.comment,
        dataset=body.dataset,
    )
    notify_feed(request)
    return record
