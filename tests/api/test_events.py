"""The events API: feed, live stream, upload (and its limits), one event, its image, reports."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cvcycle.demo.sample_home import sample_event_lines
from cvcycle.feedback.events import push_events

# The fixtures ``app`` and ``small_upload_app`` (tests/api/conftest.py) are FilledApp records.
FilledApp = Any


def _lines(count: int, prefix: str) -> str:
    return "\n".join(sample_event_lines(count, id_prefix=prefix)) + "\n"


def test_feed_is_newest_first_with_verdicts(app: FilledApp) -> None:
    sample = app.sample
    first = sample.event_ids_with_boxes[0]
    app.client.post(f"/api/events/{first}/reports", json={"type": "confirmed", "detection": 0})
    feed = app.client.get("/api/events", params={"limit": 5}).json()
    assert [e["id"] for e in feed] == sorted([e["id"] for e in feed], reverse=True)
    assert len(feed) == 5
    older = app.client.get("/api/events", params={"before_id": feed[-1]["id"]}).json()
    assert {e["id"] for e in older}.isdisjoint({e["id"] for e in feed})
    by_id = {e["id"]: e for e in feed + older}
    assert by_id[first]["verdicts"] == ["confirmed"]
    assert app.client.get("/api/events", params={"limit": 0}).status_code == 422


def test_one_event_its_image_and_unknown_ids(app: FilledApp) -> None:
    event_id = app.sample.event_ids_with_boxes[0]
    event = app.client.get(f"/api/events/{event_id}").json()
    assert event["width"] == 320 and event["detections"] and "person" in event["classes"]
    image = app.client.get(f"/api/events/{event_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8"
    for path in ("/api/events/987654", "/api/events/987654/image"):
        missing = app.client.get(path)
        assert missing.status_code == 404 and "987654" in missing.json()["error"]
    report = app.client.post("/api/events/987654/reports", json={"type": "confirmed"})
    assert report.status_code == 404 and "987654" in report.json()["error"]


def test_upload_jsonl_body_and_form(app: FilledApp) -> None:
    body = app.client.post(
        "/api/events", content=_lines(3, "body"), headers={"content-type": "application/x-ndjson"}
    )
    assert body.status_code == 200, body.text
    assert body.json()["kept"] == 3 and len(body.json()["event_ids"]) == 3
    again = app.client.post("/api/events", content=_lines(3, "body"))
    assert again.status_code == 200 and again.json()["duplicates"] == 3
    form = app.client.post("/api/events", files={"file": ("events.jsonl", _lines(2, "form").encode())})
    assert form.status_code == 200 and form.json()["kept"] == 2
    no_file = app.client.post("/api/events", files={"other": ("x.jsonl", b"{}")})
    assert no_file.status_code == 422 and "file" in no_file.json()["error"]


def test_upload_reports_bad_lines_and_refuses_server_paths(app: FilledApp, tmp_path: Path) -> None:
    good = next(sample_event_lines(1, id_prefix="mixed"))
    mixed = app.client.post("/api/events", content=f"{good}\nnot json\n")
    assert mixed.status_code == 200
    assert mixed.json()["kept"] == 1 and mixed.json()["errors"][0]["line"] == 2
    bad = app.client.post("/api/events", content="not json\n")
    assert bad.status_code == 422 and "line 1" in bad.json()["error"]
    # A snapshot path would make the server read its own files: uploads must send the image.
    image = tmp_path / "snap.jpg"
    image.write_bytes(app.client.get(f"/api/events/{app.sample.empty_event_ids[0]}/image").content)
    line = json.loads(good)
    line.update(id="path-snapshot", snapshot=str(image))
    refused = app.client.post("/api/events", content=json.dumps(line))
    assert refused.status_code == 422 and "base64" in refused.json()["error"]


def test_oversized_upload_gets_413(small_upload_app: FilledApp) -> None:
    client = small_upload_app.client
    big = _lines(2, "big")
    assert len(big) > 2_000
    response = client.post("/api/events", content=big)
    assert response.status_code == 413 and "2000 bytes" in response.json()["error"]
    chunked = client.post("/api/events", content=iter([big[:1500].encode(), big[1500:].encode()]))
    assert chunked.status_code == 413
    form = client.post("/api/events", files={"file": ("e.jsonl", big.encode())})
    assert form.status_code == 413
    assert client.get("/api/events", params={"limit": 100}).json()[0]["id"] == max(
        small_upload_app.sample.event_ids_with_boxes + small_upload_app.sample.empty_event_ids
    )


def test_stream_sends_new_events_as_server_sent_events(app: FilledApp) -> None:
    newest = app.client.get("/api/events", params={"limit": 1}).json()[0]["id"]
    pushed = app.client.post("/api/events", content=_lines(2, "live")).json()["event_ids"]
    with app.client.stream(
        "GET", "/api/events/stream", params={"after_id": newest, "max_events": 2}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    messages = [m for m in text.split("\n\n") if m.startswith("id: ")]
    ids = [int(m.split("\n")[0][4:]) for m in messages]
    assert ids == pushed
    data = json.loads(messages[0].split("data: ", 1)[1])
    assert data["id"] == pushed[0] and data["verdicts"] == []
    # A reconnecting EventSource sends the last id it saw and gets only what came after it.
    with app.client.stream(
        "GET", "/api/events/stream", params={"max_events": 1}, headers={"Last-Event-ID": str(newest)}
    ) as response:
        again = "".join(response.iter_text())
    assert f"id: {pushed[0]}\n" in again and f"id: {pushed[1]}\n" not in again


def test_stream_finds_events_pushed_by_another_process(app: FilledApp) -> None:
    """``cvcycle events push`` writes to the database without telling the app: the stream polls."""
    newest = app.client.get("/api/events", params={"limit": 1}).json()[0]["id"]
    pushed: list[int] = []

    def push_elsewhere() -> None:
        time.sleep(0.3)  # after the stream is open
        pushed.extend(push_events(app.db, app.store, list(sample_event_lines(1, id_prefix="cli"))).event_ids)

    thread = threading.Thread(target=push_elsewhere)
    thread.start()
    params = {"after_id": newest, "max_events": 1}
    with app.client.stream("GET", "/api/events/stream", params=params) as response:
        text = "".join(response.iter_text())
    thread.join()
    assert f"id: {pushed[0]}\n" in text


def test_stream_passes_on_other_operators_verdicts(app: FilledApp) -> None:
    newest = app.client.get("/api/events", params={"limit": 1}).json()[0]["id"]
    event_id = app.sample.event_ids_with_boxes[0]
    report = app.client.post(
        f"/api/events/{event_id}/reports", json={"type": "false_detection", "detection": 0}
    )
    params = {"after_id": newest, "after_report_id": report.json()["id"] - 1, "max_events": 1}
    with app.client.stream("GET", "/api/events/stream", params=params) as response:
        text = "".join(response.iter_text())
    (message,) = [m for m in text.split("\n\n") if m.startswith("event: verdict")]
    data = json.loads(message.split("data: ", 1)[1])
    assert data == {"report_id": report.json()["id"], "event_id": event_id, "type": "false_detection"}


def test_reports_open_tasks_and_validate_boxes(app: FilledApp) -> None:
    event_id = app.sample.event_ids_with_boxes[0]
    false = app.client.post(
        f"/api/events/{event_id}/reports",
        json={"type": "false_detection", "detection": 0, "operator": "op", "comment": "<b>shadow</b>"},
    )
    assert false.status_code == 201, false.text
    assert false.json()["task_id"] and false.json()["dataset"] == "feedback"
    inaccurate = app.client.post(
        f"/api/events/{event_id}/reports",
        json={
            "type": "inaccurate_detection",
            "detection": 1,
            "box": {"cls": "person", "x": 5, "y": 6, "w": 30, "h": 40},
        },
    )
    assert inaccurate.status_code == 201 and inaccurate.json()["box"]["box"] == [5, 6, 30, 40]
    detail = app.client.get(f"/api/events/{event_id}").json()
    assert [r["type"] for r in detail["reports"]] == ["false_detection", "inaccurate_detection"]
    assert detail["reports"][0]["comment"] == "<b>shadow</b>"

    empty = app.sample.empty_event_ids[0]
    missed = {"type": "missed_detection", "box": {"cls": "person", "x": 10, "y": 10, "w": 20, "h": 30}}
    assert app.client.post(f"/api/events/{empty}/reports", json=missed).status_code == 201


@pytest.mark.parametrize(
    ("box", "field"),
    [
        ({"cls": "person", "x": 10, "y": 10, "w": -5, "h": 30}, "box.w"),
        ({"cls": "person", "x": 10, "y": 10, "w": 5, "h": 0}, "box.h"),
        ({"cls": "", "x": 10, "y": 10, "w": 5, "h": 5}, "box.cls"),
        ({"cls": "person", "x": 400, "y": 10, "w": 20, "h": 30}, "box"),
        ({"cls": "person", "x": 10, "y": -50, "w": 20, "h": 30}, "box"),
        ({"cls": "person", "x": 10, "y": 10, "w": 20}, "box.h"),
    ],
)
def test_bad_report_box_gets_422_naming_the_field(app: FilledApp, box: dict[str, object], field: str) -> None:
    empty = app.sample.empty_event_ids[0]
    response = app.client.post(f"/api/events/{empty}/reports", json={"type": "missed_detection", "box": box})
    assert response.status_code == 422
    assert response.json()["error"].startswith(field)


def test_report_rules_from_the_service_are_422(app: FilledApp) -> None:
    empty = app.sample.empty_event_ids[0]
    no_box = app.client.post(f"/api/events/{empty}/reports", json={"type": "missed_detection"})
    assert no_box.status_code == 422 and "box" in no_box.json()["error"]
    nothing = app.client.post(f"/api/events/{empty}/reports", json={"type": "false_detection"})
    assert nothing.status_code == 422 and "no detections" in nothing.json()["error"]
    kind = app.client.post(f"/api/events/{empty}/reports", json={"type": "great"})
    assert kind.status_code == 422 and kind.json()["error"].startswith("type")
