"""The operator panel in a real browser: live feed, one-key reports, drawn boxes, the missed queue."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from cvcycle.annotate.tasks import complete_task

Live = Any  # the ``live`` fixture of tests/web/conftest.py


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def drag(page: Any, selector: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag from ``start`` to ``end``, given as fractions of the element's box."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    x0, y0 = box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1]
    x1, y1 = box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    page.mouse.move(x1, y1, steps=4)
    page.mouse.up()


def _press(page: Any, locator: Any) -> None:
    """Hold the mouse button down on the middle of ``locator`` (release with ``page.mouse.up()``)."""
    box = locator.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def _queue_an_empty_frame(
    page: Any, live: Live, push_event: Callable[..., int], prefix: str
) -> tuple[str, int, Any]:
    """Push an event where the model saw nothing, open the missed queue and draw frames.

    Returns the event's source, its id and its item in the queue.
    """
    source = _unique(prefix)
    event_id = push_event(source=source, detections=[])
    page.goto(f"{live.url}/missed")
    expect(page.locator('select[aria-label="model"] option').first).to_be_attached()
    page.keyboard.press("d")
    item = page.locator(f'.queue li[data-event-id="{event_id}"]')
    expect(item).to_contain_text(source)
    return source, event_id, item


def _reports(live: Live, event_id: int) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = live.api("GET", f"/api/events/{event_id}").json()["reports"]
    return reports


def test_false_detection_reported_by_key_on_an_event_that_arrived_live(
    page: Any, live: Live, push_event: Callable[..., int], screenshot: Callable[[Any, str], Path]
) -> None:
    page.goto(f"{live.url}/feed")
    expect(page.locator("#feed-count")).to_contain_text("events")
    expect(page.locator(".live-dot.on")).to_have_count(1)
    source = _unique("cam-live")
    event_id = push_event(source=source)  # posted after the page loaded: it must come over SSE
    row = page.locator(f'.feed-row[data-event-id="{event_id}"]')
    expect(row).to_contain_text(source)
    row.click()
    expect(page.locator(".card .title")).to_have_text(source)
    page.keyboard.press("f")
    expect(page.locator(".status-line")).to_contain_text(f"Reported false detection on event #{event_id}")
    expect(row.locator(".badge.false_detection")).to_have_count(1)
    assert [r["type"] for r in _reports(live, event_id)] == ["false_detection"]
    assert _reports(live, event_id)[0]["task_id"] is not None
    screenshot(page, "operator-false-detection")
    assert page.errors == []


def test_inaccurate_detection_corrected_by_dragging_a_box(
    page: Any, live: Live, push_event: Callable[..., int], screenshot: Callable[[Any, str], Path]
) -> None:
    source = _unique("cam-inaccurate")
    event_id = push_event(source=source)
    page.goto(f"{live.url}/feed/{event_id}")
    expect(page.locator(".card .title")).to_have_text(source)
    boxes = len(live.api("GET", f"/api/events/{event_id}").json()["detections"])
    page.keyboard.press(str(boxes))  # the last box
    expect(page.locator(".detections li.selected")).to_contain_text(str(boxes))
    page.keyboard.press("i")
    expect(page.locator(".stage.drawing")).to_have_count(1)
    drag(page, ".stage svg.overlay", (0.25, 0.25), (0.5, 0.75))
    expect(page.locator(".status-line")).to_contain_text("Reported inaccurate")
    (report,) = _reports(live, event_id)
    assert report["type"] == "inaccurate_detection" and report["detection"] == boxes - 1
    x, y, w, h = report["box"]
    assert abs(x - 80) < 4 and abs(y - 60) < 4 and abs(w - 80) < 4 and abs(h - 120) < 4  # 320x240 image
    expect(page.locator(".box.report")).to_have_count(1)
    expect(page.locator(".detections li.selected")).to_contain_text(str(boxes))  # still the box reported on
    screenshot(page, "operator-inaccurate-box")
    assert page.errors == []


def test_missed_detection_marked_with_a_new_box(
    page: Any, live: Live, push_event: Callable[..., int], screenshot: Callable[[Any, str], Path]
) -> None:
    source, event_id, item = _queue_an_empty_frame(page, live, push_event, "cam-empty")
    item.click()
    expect(page.locator(".card .title")).to_have_text(source)
    page.keyboard.press("m")
    drag(page, ".stage svg.overlay", (0.1, 0.2), (0.3, 0.9))
    expect(page.locator(".status-line")).to_contain_text(f"Marked a missed person on event #{event_id}")
    expect(page.locator(".box.report")).to_have_count(1)
    (report,) = _reports(live, event_id)
    assert report["type"] == "missed_detection" and report["cls"] == "person"
    x, y, w, h = report["box"]
    assert abs(x - 32) < 4 and abs(y - 48) < 4 and abs(w - 64) < 4 and abs(h - 168) < 4
    assert "done" in (item.get_attribute("class") or "")
    screenshot(page, "missed-detection")
    assert page.errors == []


def test_a_click_on_the_feed_survives_an_event_arriving_under_the_pointer(
    page: Any, live: Live, push_event: Callable[..., int]
) -> None:
    """Live events re-render the feed; a row pressed before one arrives and released after still opens."""
    source = _unique("cam-pressed")
    event_id = push_event(source=source)
    page.goto(f"{live.url}/feed")
    expect(page.locator(".live-dot.on")).to_have_count(1)
    row = page.locator(f'.feed-row[data-event-id="{event_id}"]')
    expect(row).to_contain_text(source)
    _press(page, row)
    newer = push_event(source=_unique("cam-newer"))  # arrives over SSE while the button is held
    expect(page.locator(f'.feed-row[data-event-id="{newer}"]')).to_have_count(1)
    page.mouse.up()
    expect(page.locator(".card .title")).to_have_text(source)
    assert page.errors == []


def test_a_click_on_the_missed_queue_survives_the_list_refreshing_under_the_pointer(
    page: Any, live: Live, push_event: Callable[..., int]
) -> None:
    """The queue re-renders when frames are drawn; an item pressed before and released after still opens."""
    source, _, item = _queue_an_empty_frame(page, live, push_event, "cam-press")
    page.locator(".queue li").first.click()  # something else is open first
    expect(page.locator(".card .title")).not_to_have_text(source)
    page.evaluate("document.querySelector('.status-line').textContent = ''")
    _press(page, item)
    page.keyboard.press("d")  # draws again: the list refreshes while the button is held
    expect(page.locator(".status-line")).not_to_be_empty()
    page.mouse.up()
    expect(page.locator(".card .title")).to_have_text(source)
    expect(item).to_have_class(re.compile(r"\bselected\b"))
    assert page.errors == []


def test_dashboard_shows_the_new_counts(
    page: Any, live: Live, push_event: Callable[..., int], screenshot: Callable[[Any, str], Path]
) -> None:
    def totals() -> dict[str, int]:
        rows = live.api("GET", "/api/feedback/stats").json()
        keys = ("false_detection", "inaccurate_detection", "missed_detection", "events")
        return {k: sum(r[k] for r in rows) for k in keys}

    with_boxes = push_event(source=_unique("cam-dash"))
    empty = push_event(source=_unique("cam-dash"), detections=[])
    false = live.api(
        "POST", f"/api/events/{with_boxes}/reports", json={"type": "false_detection", "detection": 0}
    )
    complete_task(
        live.db, false.json()["task_id"], [{"cls": "person", "box": [5, 5, 30, 60]}], operator="ann-dash"
    )
    missed = {"type": "missed_detection", "box": {"cls": "person", "x": 5, "y": 5, "w": 40, "h": 80}}
    live.api("POST", f"/api/events/{empty}/reports", json=missed)
    now = totals()
    page.goto(f"{live.url}/dashboard")
    for key in ("false_detection", "missed_detection", "events"):
        expect(page.locator(f'.tile[data-stat="{key}"] .value')).to_have_text(f"{now[key]:,}")
    expect(page.locator("#stats-table tbody tr").first).to_be_visible()
    expect(page.locator("svg.chart rect.bar").first).to_be_attached()
    expect(page.locator("#throughput-table tbody tr", has_text="ann-dash")).to_contain_text("1")
    screenshot(page, "dashboard")
    source = live.api("GET", f"/api/events/{with_boxes}").json()["source"]
    page.select_option('select[aria-label="source"]', source)
    expect(page.locator('.tile[data-stat="events"] .value')).to_have_text("1")
    expect(page.locator('.tile[data-stat="false_detection"] .value')).to_have_text("1")
    expect(page.locator("#stats-table tbody tr")).to_have_count(1)
    assert page.errors == []


def test_html_in_text_fields_is_shown_as_text_and_never_runs(
    page: Any, live: Live, push_event: Callable[..., int], screenshot: Callable[[Any, str], Path]
) -> None:
    source = "<img src=x onerror=window.__xss=1>"
    event_id = push_event(source=source)
    comment = "<script>window.__xss=2</script><b>bold?</b>"
    live.api("POST", f"/api/events/{event_id}/reports", json={"type": "confirmed", "comment": comment})
    page.goto(f"{live.url}/feed/{event_id}")
    expect(page.locator(".card .title")).to_have_text(source)
    expect(page.locator(".reports .comment")).to_have_text(comment)
    expect(page.locator(f'.feed-row[data-event-id="{event_id}"] .source')).to_have_text(source)
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0 and page.locator("b", has_text="bold?").count() == 0
    screenshot(page, "html-as-text")
    assert page.errors == []


def test_confirm_by_key_after_moving_through_the_feed_by_key(
    page: Any, live: Live, push_event: Callable[..., int]
) -> None:
    older = push_event(source=_unique("cam-older"))
    newer = push_event(source=_unique("cam-newer"))
    page.goto(f"{live.url}/feed")
    expect(page.locator(f'.feed-row[data-event-id="{newer}"]')).to_be_visible()
    page.keyboard.press("g")
    expect(page.locator(".card .title")).to_contain_text("cam-newer")
    page.keyboard.press("j")
    expect(page.locator(".card .title")).to_contain_text("cam-older")
    page.keyboard.press("c")
    expect(page.locator(".status-line")).to_contain_text(f"Reported confirmed on event #{older}")
    assert [r["type"] for r in _reports(live, older)] == ["confirmed"] and _reports(live, newer) == []
    assert page.errors == []


def test_nothing_missed_by_key_moves_to_the_next_frame(
    page: Any, live: Live, push_event: Callable[..., int]
) -> None:
    first = push_event(source=_unique("cam-quiet"), detections=[])
    page.goto(f"{live.url}/missed")
    expect(page.locator('select[aria-label="model"] option').first).to_be_attached()
    page.keyboard.press("d")
    item = page.locator(f'.queue li[data-event-id="{first}"]')
    item.click()
    expect(page.locator(".card .title")).to_contain_text("cam-quiet")
    page.keyboard.press("n")
    expect(page.locator(".status-line")).to_contain_text(f"Event #{first}: nothing missed")
    expect(item).to_have_class(re.compile(r"\bdone\b"))
    assert [r["type"] for r in _reports(live, first)] == ["confirmed"]
    assert page.errors == []


def test_upload_of_an_events_file_shows_up_in_the_feed(page: Any, live: Live) -> None:
    from cvcycle.demo.sample_home import sample_event_lines

    source = _unique("cam-upload")
    lines = [json.loads(line) for line in sample_event_lines(2, seed=77, id_prefix=_unique("upload"))]
    for line in lines:
        line["source"] = source
    page.goto(f"{live.url}/feed")
    expect(page.locator(".live-dot.on")).to_have_count(1)
    body = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    page.set_input_files(
        'input[type="file"]',
        files=[{"name": "events.jsonl", "mimeType": "application/x-ndjson", "buffer": body.encode()}],
    )
    expect(page.locator(".status-line")).to_contain_text(
        "Uploaded events.jsonl: 2 kept, 0 already known, 1 bad lines"
    )
    expect(page.locator(".feed-row .source", has_text=source)).to_have_count(2)
    assert page.errors == []


def test_another_operators_verdict_shows_without_reload(
    page: Any, browser: Any, live: Live, push_event: Callable[..., int]
) -> None:
    event_id = push_event(source=_unique("cam-shared"))
    page.goto(f"{live.url}/feed/{event_id}")
    expect(page.locator(".live-dot.on")).to_have_count(1)
    other = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    other.goto(f"{live.url}/feed/{event_id}")
    expect(other.locator(".card .title")).to_contain_text("cam-shared")
    other.keyboard.press("f")
    expect(other.locator(".status-line")).to_contain_text("Reported false detection")
    row = page.locator(f'.feed-row[data-event-id="{event_id}"]')
    expect(row.locator(".badge.false_detection")).to_have_text("false detection")
    expect(page.locator(".card .reports li")).to_have_count(1)
    expect(other.locator(f'.feed-row[data-event-id="{event_id}"] .badge')).to_have_text("false detection")
    other.context.close()
    assert page.errors == []


def test_to_review_filter_by_key(page: Any, live: Live, push_event: Callable[..., int]) -> None:
    reviewed = push_event(source=_unique("cam-reviewed"))
    live.api("POST", f"/api/events/{reviewed}/reports", json={"type": "confirmed"})
    waiting = push_event(source=_unique("cam-waiting"))
    page.goto(f"{live.url}/feed")
    expect(page.locator(f'.feed-row[data-event-id="{reviewed}"]')).to_be_visible()
    page.keyboard.press("u")
    expect(page.locator('select[aria-label="show"]')).to_have_value("to_review")
    expect(page.locator(f'.feed-row[data-event-id="{waiting}"]')).to_be_visible()
    expect(page.locator(f'.feed-row[data-event-id="{reviewed}"]')).to_have_count(0)
    expect(page.locator("#feed-count")).to_contain_text(" of ")
    page.keyboard.press("g")
    expect(page.locator(".card .title")).to_contain_text("cam-waiting")
    page.keyboard.press("u")
    expect(page.locator(f'.feed-row[data-event-id="{reviewed}"]')).to_be_visible()
    assert page.errors == []


def test_an_oversized_upload_shows_the_servers_413_message(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/feed")
    expect(page.locator(".live-dot.on")).to_have_count(1)
    limit = live.settings.max_upload_bytes
    live.settings.max_upload_bytes = 1_000
    try:
        body = b"{}\n" * 600
        page.set_input_files(
            'input[type="file"]', files=[{"name": "big.jsonl", "mimeType": "text/plain", "buffer": body}]
        )
        expect(page.locator(".status-line .error")).to_contain_text("Error 413")
        expect(page.locator(".status-line .error")).to_contain_text("over the limit of 1000 bytes")
    finally:
        live.settings.max_upload_bytes = limit
    assert page.errors == []


def test_the_feed_reopens_a_broken_stream(page: Any, live: Live, push_event: Callable[..., int]) -> None:
    attempts: list[str] = []

    def first_fails(route: Any) -> None:
        attempts.append(route.request.url)
        if len(attempts) == 1:
            route.abort()
        else:
            route.continue_()

    page.route("**/api/events/stream*", first_fails)
    page.goto(f"{live.url}/feed")
    expect(page.locator(".live-dot.on")).to_have_count(1, timeout=15_000)
    assert len(attempts) >= 2
    event_id = push_event(source=_unique("cam-reopened"))
    expect(page.locator(f'.feed-row[data-event-id="{event_id}"]')).to_be_visible()
    assert page.errors == []
