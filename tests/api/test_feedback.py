"""The feedback API behind the dashboard and the missed queue: statistics, review frames, throughput."""

from __future__ import annotations

from typing import Any

from cvcycle.annotate.tasks import complete_task, list_tasks

FilledApp = Any  # the ``app`` fixture of tests/api/conftest.py


def _totals(rows: list[dict[str, Any]], key: str) -> int:
    return sum(int(r[key]) for r in rows)


def test_stats_count_reports_per_day_version_and_source(app: FilledApp) -> None:
    before = app.client.get("/api/feedback/stats").json()
    assert {"day", "model_version", "source", "false_rate"} <= set(before[0])
    assert _totals(before, "events") == 12 and _totals(before, "false_detection") == 0
    event_id = app.sample.event_ids_with_boxes[0]
    app.client.post(f"/api/events/{event_id}/reports", json={"type": "false_detection", "detection": 0})
    after = app.client.get("/api/feedback/stats", params={"group_by": "model_version"}).json()
    assert len(after) == 1 and after[0]["false_detection"] == 1 and after[0]["false_rate"] == 1.0
    bad = app.client.get("/api/feedback/stats", params={"group_by": "colour"})
    assert bad.status_code == 422 and "colour" in bad.json()["error"]


def test_review_queue_draws_empty_frames_once_and_drops_judged_ones(app: FilledApp) -> None:
    models = app.client.get("/api/feedback/models").json()
    assert models == [{"name": "detector", "version": 1, "model": "detector@1", "events": 12, "empty": 4}]
    assert app.client.get("/api/feedback/review-frames").json() == []
    drawn = app.client.post("/api/feedback/review-frames/sample", json={"model": "detector@1", "limit": 3})
    assert drawn.status_code == 200 and len(drawn.json()) == 3
    assert {d["event_id"] for d in drawn.json()} <= set(app.sample.empty_event_ids)
    pending = app.client.get("/api/feedback/review-frames").json()
    assert [p["id"] for p in pending] == [d["event_id"] for d in drawn.json()]
    assert pending[0]["detections"] == [] and pending[0]["width"] == 320
    app.client.post(f"/api/events/{pending[0]['id']}/reports", json={"type": "confirmed"})
    assert len(app.client.get("/api/feedback/review-frames").json()) == 2
    rest = app.client.post("/api/feedback/review-frames/sample", json={"model": "detector", "limit": 10})
    assert len(rest.json()) == 1  # four empty images in all, three already drawn
    bad = app.client.post("/api/feedback/review-frames/sample", json={"model": "detector@x"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("model")
    rate = app.client.post("/api/feedback/review-frames/sample", json={"model": "detector", "rate": 2})
    assert rate.status_code == 422 and rate.json()["error"].startswith("rate")


def test_throughput_per_annotator_and_day(app: FilledApp) -> None:
    assert app.client.get("/api/feedback/throughput").json() == []
    event_id = app.sample.event_ids_with_boxes[0]
    app.client.post(f"/api/events/{event_id}/reports", json={"type": "false_detection", "detection": 0})
    (task,) = list_tasks(app.db, status="open")
    complete_task(app.db, task.id, [{"cls": "person", "box": [1, 2, 3, 4]}], operator="ann-1")
    (row,) = app.client.get("/api/feedback/throughput").json()
    assert row["annotator"] == "ann-1" and row["tasks"] == 1 and row["labels"] == 1


# (model filter, the versions it keeps in the sample home: detector@1 is production and emitted the events)
MODEL_FILTERS: list[tuple[str, list[str]]] = [
    ("detector@1", ["detector@1"]),
    ("detector@latest", ["detector@2"]),
    ("detector:production", ["detector@1"]),
    ("detector", ["detector@2", "detector@1"]),
]


def test_model_filters_take_every_form_of_a_reference(app: FilledApp) -> None:
    client = app.client
    for model, kept in MODEL_FILTERS:
        emitted = [v for v in kept if v == "detector@1"]
        stats = client.get("/api/feedback/stats", params={"model": model, "group_by": "model_version"})
        assert [f"detector@{r['model_version']}" for r in stats.json()] == emitted, model
        runs = client.get("/api/runs", params={"model": model}).json()
        assert [r["model_versions"] for r in runs] == [[v] for v in kept], model
        drawn = client.post("/api/feedback/review-frames/sample", json={"model": model, "limit": 1})
        assert [d["model"] for d in drawn.json()] == emitted, model
    bad = [("detector:retired", 404, "no alias 'retired'"), ("detector@x", 422, "invalid version")]
    for model, status, says in bad:
        for response in (
            client.get("/api/feedback/stats", params={"model": model}),
            client.get("/api/runs", params={"model": model}),
            client.post("/api/feedback/review-frames/sample", json={"model": model}),
        ):
            assert response.status_code == status and says in response.json()["error"], response.json()
