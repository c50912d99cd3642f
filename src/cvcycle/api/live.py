"""The live feed: waking an app's open feeds when events or reports arrive, and their server-sent events.

A feed stream sends an ``event`` message per new event (its JSON as data, its id as the id, so a
reconnecting ``EventSource`` says where it stopped) and a ``verdict`` message per new report on an
event. It asks the database at least every ``FEED_POLL_SECONDS``, so events pushed by another
process (``cvcycle events push``) show up too; events and reports that come through this app wake
it at once (``notify_feed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from cvcycle.db import Database
from cvcycle.feedback.feed import feed_after, verdicts_after
from cvcycle.records import to_jsonable

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


def sse(event: str, data: Any, id: int | None = None) -> str:
    """One server-sent-events message: ``data`` (records included) as JSON."""
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(to_jsonable(data))}\n\n"


async def feed_messages(
    request: Request, db: Database, after_id: int, after_report_id: int, max_events: int | None
) -> AsyncIterator[str]:
    """The messages of one feed stream: a ``hello``, then events and verdicts as they come, until the
    client goes away or ``max_events`` messages were sent; a comment keeps a quiet connection open."""
    last, last_report, sent = after_id, after_report_id, 0
    last_write = time.monotonic()
    yield "retry: 1000\n" + sse("hello", {"after_id": last, "after_report_id": last_report})
    signal = feed_signal(request)
    waiter = signal.subscribe()
    wake = waiter[1]
    try:
        while not await request.is_disconnected():
            wake.clear()  # before reading: a notification during the reads wakes the next wait
            for item in await run_in_threadpool(feed_after, db, last):
                last, sent, last_write = item.id, sent + 1, time.monotonic()
                yield sse("event", item, id=last)
                if max_events is not None and sent >= max_events:
                    return
            for verdict in await run_in_threadpool(verdicts_after, db, last_report):
                last_report, sent, last_write = verdict.report_id, sent + 1, time.monotonic()
                yield sse("verdict", verdict)
                if max_events is not None and sent >= max_events:
                    return
            if time.monotonic() - last_write >= FEED_KEEPALIVE_SECONDS:
                last_write = time.monotonic()
                yield ": keep-alive\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=FEED_POLL_SECONDS)
    finally:
        signal.unsubscribe(waiter)
