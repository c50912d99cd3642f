"""Production events: the feed (paged, and live as server-sent events), upload, one event, reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartParser

from cvcycle.api.deps import DbDep, SettingsDep, StoreDep
from cvcycle.boxes import MAX_CLASS_NAME_LENGTH, Box
from cvcycle.errors import InvalidInput, TooLarge
from cvcycle.feedback.events import push_events
from cvcycle.feedback.feed import (
    event_detail,
    event_image,
    feed_after,
    feed_page,
    newest_event_id,
    newest_report_id,
    verdicts_after,
)
from cvcycle.feedback.reports import DEFAULT_DATASET, report_event

router = APIRouter(prefix="/api/events", tags=["events"])

# The live feed asks the database at least this often, so events pushed by another process
# (``cvcycle events push``) show up too; events and reports that come through this app wake it at once.
FEED_POLL_SECONDS = 1.0
FEED_KEEPALIVE_SECONDS = 15.0


class FeedSignal:
    """Wakes the live feeds of one app when events or reports arrive through it; callable from any thread."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(waiter)

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)


_SIGNAL_LOCK = threading.Lock()


def feed_signal(request: Request) -> FeedSignal:
    with _SIGNAL_LOCK:
        signal: FeedSignal | None = getattr(request.app.state, "feed_signal", None)
        if signal is None:
            signal = request.app.state.feed_signal = FeedSignal()
    return signal


def notify_feed(request: Request) -> None:
    """Tell the live feeds of this app that events or reports arrived."""
    feed_signal(request).notify()


@router.get("")
def list_feed(
    db: DbDep,
    limit: int = Query(200, ge=1, le=20_000),
    before_id: int | None = Query(None, ge=1),
) -> list[dict[str, Any]]:
    """The newest events first (older than ``before_id`` when given), each with its verdicts."""
    return [item.to_json() for item in feed_page(db, limit=limit, before_id=before_id)]


@router.get("/stream", response_class=StreamingResponse)
async def stream_feed(
    request: Request,
    db: DbDep,
    after_id: int | None = Query(None, ge=0, description="Send events after this id; default: from now on."),
    after_report_id: int | None = Query(
        None, ge=0, description="Send verdicts on events after this report id; default: from now on."
    ),
    max_events: int | None = Query(None, ge=1, description="Close the stream after this many messages."),
) -> StreamingResponse:
    """Server-sent events: an ``event`` message per new event (its JSON as data, its id as the id)
    and a ``verdict`` message per new report on an event, so every operator sees what others did."""
    last_event_id = request.headers.get("last-event-id", "")
    start = int(last_event_id) if last_event_id.isdigit() else after_id
    if start is None:
        start = await run_in_threadpool(newest_event_id, db)
    report_start = after_report_id
    if report_start is None:
        report_start = await run_in_threadpool(newest_report_id, db)

    async def messages() -> AsyncIterator[str]:
        last, last_report, sent = start, report_start, 0
        last_write = time.monotonic()
        hello = {"after_id": last, "after_report_id": last_report}
        yield f"retry: 1000\nevent: hello\ndata: {json.dumps(hello)}\n\n"
        waiter = feed_signal(request).subscribe()
        wake = waiter[1]
        try:
            while not await request.is_disconnected():
                wake.clear()  # before reading: a notification during the reads wakes the next wait
                for item in await run_in_threadpool(feed_after, db, last):
                    last, sent, last_write = item.event.id, sent + 1, time.monotonic()
                    yield f"id: {last}\nevent: event\ndata: {json.dumps(item.to_json())}\n\n"
                    if max_events is not None and sent >= max_events:
                        return
                for verdict in await run_in_threadpool(verdicts_after, db, last_report):
                    last_report, sent, last_write = verdict.report_id, sent + 1, time.monotonic()
                    yield f"event: verdict\ndata: {json.dumps(verdict.to_json())}\n\n"
                    if max_events is not None and sent >= max_events:
                        return
                if time.monotonic() - last_write >= FEED_KEEPALIVE_SECONDS:
                    last_write = time.monotonic()
                    yield ": keep-alive\n\n"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=FEED_POLL_SECONDS)
        finally:
            feed_signal(request).unsubscribe(waiter)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)


async def _read_upload(request: Request, limit: int) -> bytes:
    """The request body (or its ``file`` part for a form upload), refused past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(
            f"upload of {int(declared)} bytes is over the limit of {limit} bytes",
            hint="split the file, or raise CVCYCLE_MAX_UPLOAD_BYTES",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"upload is over the limit of {limit} bytes", hint="split the file")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return bytes(body)

    async def replay() -> AsyncGenerator[bytes, None]:
        yield bytes(body)

    form = await MultiPartParser(request.headers, replay()).parse()
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


@router.post("", openapi_extra=UPLOAD_BODY)
async def upload_events(request: Request, db: DbDep, store: StoreDep, settings: SettingsDep) -> Response:
    """Store events sent as JSON Lines (the body, or a form's ``file``); snapshots as base64.

    Answers what was kept, the duplicates and the bad lines; 422 when no line could be kept.
    """
    data = await _read_upload(request, settings.max_upload_bytes)
    lines = data.decode("utf-8", errors="replace").splitlines()
    result = await run_in_threadpool(push_events, db, store, lines, allow_paths=False)
    if result.kept:
        notify_feed(request)
    body = result.to_json()
    if result.errors and not result.kept and not result.duplicates:
        first = "; ".join(str(e) for e in result.errors[:3])
        return JSONResponse({"error": f"no event kept: {first}", "hint": None, **body}, status_code=422)
    return JSONResponse(body)


@router.get("/{event_id}")
def get_event(event_id: int, db: DbDep) -> dict[str, Any]:
    """One event with the reports on it and the classes its model knows."""
    return event_detail(db, event_id)


@router.get("/{event_id}/image", response_class=Response)
def get_event_image(event_id: int, db: DbDep, store: StoreDep) -> Response:
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
    detection: int | None = Field(None, ge=0, description="Index into the event's detections.")
    box: BoxBody | None = Field(None, description="The right box: for inaccurate and missed detections.")
    operator: str = Field("", max_length=200)
    comment: str = Field("", max_length=5_000)
    dataset: str = DEFAULT_DATASET


@router.post("/{event_id}/reports", status_code=201)
def post_report(event_id: int, body: ReportBody, db: DbDep, request: Request) -> dict[str, Any]:
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
    return record.to_json()
