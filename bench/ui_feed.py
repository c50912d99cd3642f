"""The operator feed's figures for ``bench/ui.py`` (``.venv/bin/python bench/ui.py feed``).

* ``feed``: the feed holds 10,000 events; events are posted one at a time from the page itself
  (``fetch`` to ``POST /api/events``), and a MutationObserver notes when each one's row enters the
  list (it arrives over server-sent events); "painted" is the first task after the next animation
  frame. Figures: post to row in the DOM, post to painted (goal p95 <= 100 ms), the post's own
  round trip, the page load with 10,000 events, and one scroll step of the virtualised list.

Times are taken in the browser with ``performance.now()``, so the clocks of the post and of the
paint are the same clock.
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from cvcycle.db.models import Event
from cvcycle.feedback.events import push_events

FEED_EVENTS = 10_000


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    at95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(at95, 1),
        "max_ms": round(ordered[-1], 1),
    }


def _wait_until(page: Any, expression: str, timeout: float = 60.0) -> None:
    """Poll an expression with ``page.evaluate``: the app's Content-Security-Policy forbids the eval
    that ``page.wait_for_function`` needs."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout:g} s: {expression}")
        time.sleep(0.02)


def _event_line(frame_id: int, source: str, when: datetime, tag: str) -> str:
    detections = [{"cls": "person", "score": 0.8, "box": [40.0, 30.0, 50.0, 120.0]}]
    return json.dumps(
        {
            "id": tag,
            "source": source,
            "time": when.isoformat(),
            "model": "detector@1",
            "detections": detections,
            "frame": {"id": frame_id},
        }
    )


def fill_feed(bench: Any, total: int = FEED_EVENTS) -> int:
    """Push events (frame references: no image to decode) until the home holds ``total``."""
    with bench.db.read() as session:
        have = int(session.scalar(select(func.count()).select_from(Event)) or 0)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    frames = bench.sample.frame_ids
    lines = [
        _event_line(frames[i % len(frames)], f"cam-{i % 12 + 1}", start + timedelta(seconds=i), f"fill-{i}")
        for i in range(have, total)
    ]
    if lines:
        result = push_events(bench.db, bench.store, lines)
        if result.errors:
            raise RuntimeError(f"filling the feed failed: {result.errors[0]}")
    return total


def figure_feed(bench: Any, posts: int = 60, pause_ms: int = 150, scroll_steps: int = 100) -> dict[str, Any]:
    """A new event painted in a feed of 10,000; the load of that feed; one scroll step."""
    fill_feed(bench)
    page = bench.page()
    page.goto(f"{bench.url}/feed")
    _wait_until(
        page,
        "document.querySelector('#feed-count')?.textContent.startsWith('10,')"
        " && document.querySelector('.live-dot.on') !== null",
    )
    load_ms = page.evaluate("performance.now()")
    frame_id = bench.sample.frame_ids[0]
    now = datetime.now(UTC)
    lines = [
        _event_line(frame_id, f"bench-feed-{i}", now, f"bench-feed-{now.timestamp()}-{i}")
        for i in range(posts)
    ]
    measured = page.evaluate(
        """async ([lines, pause]) => {
          const spacer = document.querySelector(".feed-spacer");
          const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
          const painted = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
          const out = { dom: [], painted: [], post: [] };
          for (const line of lines) {
            const source = JSON.parse(line).source;
            let seen = null;
            const arrived = new Promise((resolve) => {
              const observer = new MutationObserver(() => {
                for (const el of spacer.querySelectorAll(".feed-row .source")) {
                  if (el.textContent === source) {
                    seen = performance.now();
                    observer.disconnect();
                    resolve();
                    return;
                  }
                }
              });
              observer.observe(spacer, { childList: true, subtree: true });
            });
            const t0 = performance.now();
            const response = await fetch("/api/events", { method: "POST", body: line });
            if (!response.ok) throw new Error(`post failed: ${response.status}`);
            out.post.push(performance.now() - t0);
            await arrived;
            out.dom.push(seen - t0);
            await painted();
            out.painted.push(performance.now() - t0);
            await sleep(pause);
          }
          return out;
        }""",
        [lines, pause_ms],
    )
    scroll = page.evaluate(
        """async (steps) => {
          const list = document.querySelector(".feed-list");
          const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
          const out = [];
          let seed = 7;
          for (let i = 0; i < steps; i++) {
            seed = (seed * 16807) % 2147483647;
            const t0 = performance.now();
            list.scrollTop = (seed / 2147483647) * (list.scrollHeight - list.clientHeight);
            await frame();
            out.push(performance.now() - t0);
          }
          return { out, rows: document.querySelectorAll(".feed-row").length };
        }""",
        scroll_steps,
    )
    page.context.close()
    return {
        "events_in_feed": FEED_EVENTS + posts,
        "load_10k_ms": round(load_ms, 1),
        "post_to_row_in_dom": _percentiles(measured["dom"]),
        "post_to_painted": _percentiles(measured["painted"]),
        "post_round_trip": _percentiles(measured["post"]),
        "scroll_step_two_frames": _percentiles(scroll["out"]),
        "rows_in_dom": scroll["rows"],
    }
