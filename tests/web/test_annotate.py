"""The annotation tool in a real browser: correct a pseudo-label, label an action on a video
timeline, meet a stale revision, and reject work with a comment that holds HTML."""

from __future__ import annotations

import base64
import itertools
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvcycle.feedback.reports import report_event
from cvcycle.media import encode_jpeg

from .conftest import LiveServer


def wait_until(page: Any, expression: str, timeout: float = 20.0) -> None:
    """Poll a JavaScript expression until it is true.

    The app's Content-Security-Policy forbids eval, which ``page.wait_for_function`` relies on;
    ``page.evaluate`` goes through the DevTools protocol and is not affected.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout:g} s: {expression}")
        time.sleep(0.02)


# Tests share one live server: names and images differ by a counter, the same on every run.
_SERIAL = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}-{next(_SERIAL)}"


def _pseudo_task(live: LiveServer, push_event: Callable[..., int], box: list[float]) -> int:
    """A task opened by an operator's report on an event whose model saw one box.

    The event gets an image of its own: reports on one image join one task.
    """
    rng = np.random.default_rng(next(_SERIAL))
    pixels = np.clip(rng.normal(90, 25, (240, 320, 3)), 0, 255).astype(np.uint8)
    x, y, w, h = (int(v) for v in box)
    pixels[y : y + h, x : x + w] = (200, 170, 140)  # something box-shaped where the model saw a person
    event_id = push_event(
        source=_unique("cam-ann-"),
        detections=[{"cls": "person", "score": 0.62, "box": box}],
        snapshot=base64.b64encode(encode_jpeg(pixels, 85)).decode(),
    )
    record = report_event(live.db, event_id, "false_detection", detection=0, operator="olga")
    assert record.task_id is not None
    return record.task_id


def _open(page: Any, live: LiveServer, path: str) -> None:
    page.goto(f"{live.url}{path}")
    wait_until(page, "window.cvcycleAnnotate && window.cvcycleAnnotate.shownFrame !== null")


def _screen_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image point (x, y) on the annotation canvas."""
    sx, sy = page.evaluate(f"window.cvcycleAnnotate.canvas.toScreen({x}, {y})")
    rect = page.locator(".ann-canvas").bounding_box()
    return rect["x"] + sx, rect["y"] + sy


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, 9):
        page.mouse.move(start[0] + (end[0] - start[0]) * i / 8, start[1] + (end[1] - start[1]) * i / 8)
    page.mouse.up()


def _draft(live: LiveServer, assignment_id: int) -> dict[str, Any]:
    return live.api("GET", f"/api/assignments/{assignment_id}").json()


def test_an_annotator_corrects_a_pseudo_label_box(
    live: LiveServer, push_event: Callable[..., int], page: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    task_id = _pseudo_task(live, push_event, [100.0, 60.0, 40.0, 80.0])
    _open(page, live, f"/annotate/{task_id}?as=alice")
    row = page.locator(".ann-boxes li").first
    assert row.get_attribute("data-source") == "pseudo"
    page.locator(".ann-canvas").click(position={"x": 5, "y": 5})  # keys go to the page, not a field

    # Select the box, move it 20 px right, then pull its bottom-right corner 10 px further.
    centre = _screen_point(page, 120, 100)
    page.mouse.click(*centre)
    _drag(page, centre, _screen_point(page, 140, 100))
    _drag(page, _screen_point(page, 160, 140), _screen_point(page, 170, 150))
    assert row.get_attribute("data-source") == "human"
    page.keyboard.press("g")  # grid lines on, for the screenshot
    page.keyboard.press("Control+s")
    page.wait_for_selector(".ann-status:has-text('rev 2 · saved')")
    screenshot(page, "annotate-corrected-pseudo-label")

    assignment_id = page.evaluate("window.cvcycleAnnotate.assignment.id")
    box = _draft(live, assignment_id)["draft"]["boxes"][0]
    assert box["source"] == "human"
    assert box["box"]["x"] == pytest.approx(120, abs=1.5)
    assert box["box"]["w"] == pytest.approx(50, abs=1.5) and box["box"]["h"] == pytest.approx(90, abs=1.5)

    # Undo brings the pseudo box back; redo the correction again.
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert row.get_attribute("data-source") == "pseudo"
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+y")
    assert row.get_attribute("data-source") == "human"
    assert page.errors == []


def _click_frame(page: Any, frame: int) -> None:
    x = page.evaluate(f"window.cvcycleAnnotate.timeline.xOfFrame({frame})")
    rect = page.locator(".ann-timeline-canvas").bounding_box()
    page.mouse.click(rect["x"] + x, rect["y"] + 10)
    wait_until(page, f"window.cvcycleAnnotate.shownFrame === {frame}")


def test_an_annotator_labels_an_action_and_a_track_on_the_video_timeline(
    live: LiveServer, page: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    vera = _unique("vera")
    created = live.api(
        "POST",
        "/api/tasks",
        json={"dataset": live.sample.dataset, "media_id": live.sample.media_id, "annotators": [vera]},
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    _open(page, live, f"/annotate/{task_id}?as={vera}")
    before = page.locator(".ann-segments li").count()

    _click_frame(page, 5)
    page.keyboard.press("BracketLeft")
    _click_frame(page, 12)
    page.keyboard.press("BracketRight")
    assert page.locator(".ann-segments li").count() == before + 1

    # A track: a box on frame 12, moved on frame 16, interpolated in between.
    page.keyboard.press("n")
    _drag(page, _screen_point(page, 40, 40), _screen_point(page, 80, 120))
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    wait_until(page, "window.cvcycleAnnotate.shownFrame === 16")
    page.keyboard.press("k")  # keyframe the selected track here (a copy of its nearest box), then move it
    _drag(page, _screen_point(page, 60, 80), _screen_point(page, 100, 80))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    wait_until(page, "window.cvcycleAnnotate.shownFrame === 14")
    page.keyboard.press("Control+s")
    page.wait_for_selector(".ann-status:has-text('rev 2 · saved')")
    screenshot(page, "annotate-video-action-and-track")

    draft = _draft(live, page.evaluate("window.cvcycleAnnotate.assignment.id"))["draft"]
    mine = [s for s in draft["segments"] if s["source"] == "human"]
    assert [(s["start"], s["end"]) for s in mine] == [(5, 12)]
    (track,) = draft["tracks"]
    assert [k["frame"] for k in track["keyframes"]] == [12, 16]
    assert track["keyframes"][1]["box"]["x"] - track["keyframes"][0]["box"]["x"] == pytest.approx(40, abs=1.5)

    # Edit the action's last frame in its row, then delete it with the key, and undo that.
    segment = page.locator(".ann-segments li.selected")
    segment.get_by_label("end frame").fill("13")
    segment.get_by_label("end frame").press("Enter")
    wait_until(page, "window.cvcycleAnnotate.draft.segments.some((s) => s.start === 5 && s.end === 13)")
    page.locator(".ann-canvas").click(position={"x": 5, "y": 5})
    page.locator(".ann-segments li.selected").click()
    page.keyboard.press("Delete")
    assert page.locator(".ann-segments li").count() == before
    page.keyboard.press("Control+z")
    assert page.locator(".ann-segments li").count() == before + 1
    assert page.errors == []


def test_a_second_annotator_saving_a_stale_revision_sees_the_conflict(
    live: LiveServer,
    push_event: Callable[..., int],
    page: Any,
    browser: Any,
    screenshot: Callable[[Any, str], Path],
) -> None:
    task_id = _pseudo_task(live, push_event, [60.0, 50.0, 50.0, 90.0])
    _open(page, live, f"/annotate/{task_id}?as=alice")
    other = browser.new_context(viewport={"width": 1440, "height": 900})
    bob = other.new_page()
    bob.set_default_timeout(10_000)
    try:
        _open(bob, live, f"/annotate/{task_id}?as=bob")

        # Alice deletes the pseudo box and saves first.
        page.locator(".ann-boxes li").first.click()
        page.keyboard.press("Delete")
        page.keyboard.press("Control+s")
        page.wait_for_selector(".ann-status:has-text('rev 2 · saved')")

        # Bob, still on revision 1, moves the box and saves: refused, both versions shown.
        bob.locator(".ann-canvas").click(position={"x": 5, "y": 5})
        centre = _screen_point(bob, 85, 95)
        bob.mouse.click(*centre)
        _drag(bob, centre, _screen_point(bob, 105, 95))
        bob.keyboard.press("Control+s")
        dialog = bob.locator(".ann-dialog-box")
        dialog.wait_for()
        assert "Yours (not saved)" in dialog.inner_text()
        assert "Theirs (revision 2)" in dialog.inner_text() and "saved by alice" in dialog.inner_text()
        assert re.search(r"person \(human\) at 80", dialog.inner_text())
        screenshot(bob, "annotate-stale-revision-conflict")

        assignment_id = page.evaluate("window.cvcycleAnnotate.assignment.id")
        assert _draft(live, assignment_id)["draft"]["boxes"] == []  # nothing was overwritten

        # Bob chooses to keep his version: saved on top of revision 2, as revision 3.
        dialog.get_by_role("button", name="Keep mine (save over theirs)").click()
        bob.wait_for_selector(".ann-status:has-text('rev 3 · saved')")
        saved = _draft(live, assignment_id)
        assert saved["updated_by"] == "bob" and saved["draft"]["boxes"][0]["box"]["x"] == pytest.approx(
            80, abs=1.5
        )
    finally:
        other.close()
    assert page.errors == []


def test_a_reviewer_rejects_with_a_comment_that_stays_text(
    live: LiveServer, page: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    ann, ben = _unique("ann"), _unique("ben")
    frame_id = live.sample.frame_ids[4]
    task = live.api(
        "POST",
        "/api/tasks",
        json={"dataset": live.sample.dataset, "frame_id": frame_id, "annotators": [ann, ben], "overlap": 2},
    ).json()
    for name, dx in ((ann, 0), (ben, 4)):
        a = live.api("POST", f"/api/tasks/{task['id']}/assignments", json={"annotator": name}).json()
        boxes = [{"id": "p", "cls": "person", "box": {"x": 50 + dx, "y": 40, "w": 60, "h": 120}}]
        assert (
            live.api(
                "PUT",
                f"/api/assignments/{a['id']}/draft",
                json={"rev": 1, "author": name, "draft": {"boxes": boxes}},
            ).status_code
            == 200
        )
        assert (
            live.api(
                "POST", f"/api/assignments/{a['id']}/submit", json={"rev": 2, "author": name}
            ).status_code
            == 200
        )

    page.goto(f"{live.url}/review?as=rita")
    row = page.locator(f"tr[data-task='{task['id']}']")
    assert "boxes F1 100%" in row.inner_text()
    row.get_by_role("link", name=f"Review {ann}").click()
    wait_until(page, "window.cvcycleAnnotate && window.cvcycleAnnotate.shownFrame !== null")

    assert "boxes F1 100%" in page.locator(".ann-agreement").inner_text()
    comment = '<img src=x onerror="window.__pwned = 1"><b>not bold</b> box is too wide'
    page.get_by_label("review comment").fill(comment)
    page.get_by_role("button", name="Reject").click()
    page.wait_for_selector(".ann-message:has-text('Rejected')")
    shown = page.locator(".ann-comment-text").first
    assert shown.inner_text() == comment
    assert page.locator(".ann-reviews img, .ann-reviews b").count() == 0
    assert page.evaluate("window.__pwned") is None
    screenshot(page, "annotate-review-rejected")
    assert page.errors == []

    # The annotator sees the comment, as text, on their rejected work.
    page.goto(f"{live.url}/annotate/{task['id']}?as={ann}")
    page.wait_for_selector(".ann-comment-text")
    assert page.locator(".ann-comment-text").first.inner_text() == comment
    assert "rejected" in page.locator(".ann-status").inner_text()


def test_my_tasks_and_all_tasks(
    live: LiveServer, push_event: Callable[..., int], page: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    mia = _unique("mia")
    created = live.api(
        "POST",
        "/api/tasks",
        json={"dataset": live.sample.dataset, "media_id": live.sample.media_id, "annotators": [mia]},
    ).json()
    unassigned = _pseudo_task(live, push_event, [30.0, 30.0, 40.0, 60.0])

    page.goto(f"{live.url}/tasks?as={mia}")
    rows = page.locator(".tasks-table tbody tr")
    rows.first.wait_for()
    assert [r.get_attribute("data-task") for r in rows.all()] == [str(created["id"])]
    page.get_by_role("link", name="All tasks").click()
    page.wait_for_selector(f"tr[data-task='{unassigned}']")
    screenshot(page, "annotate-all-tasks")

    # Opening a task from All tasks takes it: it is then one of mine.
    page.locator(f"tr[data-task='{unassigned}']").get_by_role("link", name="Annotate").click()
    wait_until(page, "window.cvcycleAnnotate && window.cvcycleAnnotate.shownFrame !== null")
    scale = page.evaluate("window.cvcycleAnnotate.canvas.scale")
    page.mouse.move(*_screen_point(page, 50, 60))
    page.mouse.wheel(0, -400)
    wait_until(page, f"window.cvcycleAnnotate.canvas.scale > {scale}")
    page.get_by_role("link", name="← Tasks").click()
    page.wait_for_selector(f"tr[data-task='{unassigned}']")
    assert page.locator(".tasks-table tbody tr").count() == 2
    assert page.errors == []


def test_the_browser_interpolates_tracks_like_the_server(live: LiveServer, page: Any) -> None:
    from cvcycle.annotate.tracks import Keyframe, interpolate

    keys = [(3, (10.0, 20.0, 30.0, 40.0)), (11, (50.0, 10.0, 34.0, 44.0)), (20, (0.0, 0.0, 10.0, 10.0))]
    page.goto(f"{live.url}/tasks")
    got = page.evaluate(
        """async (keys) => {
          const { interpolate } = await import("/static/js/track-interpolation.js");
          const track = { keyframes: keys.map(([frame, [x, y, w, h]]) => ({ frame, box: { x, y, w, h } })) };
          return Array.from({ length: 24 }, (_, f) => {
            const b = interpolate(track, f);
            return b && [b.x, b.y, b.w, b.h];
          });
        }""",
        [[f, list(b)] for f, b in keys],
    )
    want = [interpolate([Keyframe(f, b) for f, b in keys], f) for f in range(24)]
    assert [None if b is None else pytest.approx(b) for b in want] == got
