"""The data behind the pages: dashboard, review queue, throughput, timeline, datasets, runs, models."""

from __future__ import annotations

from typing import Any

from cvcycle.feedback.tasks import complete_task, list_tasks

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


def test_timeline_holds_versions_runs_gates_and_deployments(app: FilledApp) -> None:
    items = app.client.get("/api/timeline").json()
    kinds = [i["kind"] for i in items]
    assert {"dataset_version", "run", "gate", "deployment"} <= set(kinds)
    assert [i["time"] for i in items] == sorted(i["time"] for i in items)
    deployments = [i["title"] for i in items if i["kind"] == "deployment"]
    assert deployments == ["detector:production -> 1", "detector:candidate -> 2"]
    gate = next(i for i in items if i["kind"] == "gate")
    assert gate["title"] == "gate detector@2 vs detector@1: PASS"
    version_item = next(i for i in items if i["kind"] == "dataset_version")
    assert version_item["detail"]["frames"] == 20


def test_datasets_list_detail_diff_and_unknown(app: FilledApp) -> None:
    (home,) = app.client.get("/api/datasets").json()
    assert home["name"] == "home" and home["head"] == 1 and home["stats"]["totals"]["frames"] == 20
    detail = app.client.get("/api/datasets/home").json()
    assert detail["summary"]["version"] == 1 and detail["versions"][0]["version"] == 1
    assert {"all", "train", "val", "test"} <= {s["name"] for s in detail["slices"]}
    diff = app.client.get("/api/datasets/home/diff", params={"from": 1, "to": 2}).json()
    assert diff["from"] == 1 and diff["frames"]["added"]["count"] == 0
    missing = app.client.get("/api/datasets/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    bad = app.client.get("/api/datasets/home/diff", params={"from": 1, "to": 9})
    assert bad.status_code == 404 and "9" in bad.json()["error"]
    assert app.client.get("/api/datasets/home/diff", params={"from": 1}).status_code == 422


def test_runs_with_mlflow_link(app: FilledApp) -> None:
    run, first = app.client.get("/api/runs").json()  # newest first
    assert run["model"] == "detector" and run["model_versions"] == ["detector@2"]
    assert first["model_versions"] == ["detector@1"]
    shown = app.client.get(f"/api/runs/{run['id']}").json()
    assert shown["history"] and shown["tracker_url"] is None and shown["tracking_uri"].startswith("sqlite")
    app.settings.mlflow_ui_url = "http://mlflow.local:5000/"
    with app.db.write() as session:
        from cvcycle.db.models import Run

        session.get(Run, run["id"]).tracker_run_id = "abc123"
    linked = app.client.get(f"/api/runs/{run['id']}").json()
    assert linked["tracker_url"] == "http://mlflow.local:5000/#/runs/abc123"
    missing = app.client.get("/api/runs/4242")
    assert missing.status_code == 404 and "4242" in missing.json()["error"]


def test_models_with_aliases_and_a_version_page(app: FilledApp) -> None:
    (model,) = app.client.get("/api/models").json()
    assert [v["aliases"] for v in model["versions"]] == [["candidate"], ["production"]]
    assert [c["alias"] for c in model["alias_history"]] == ["candidate", "production"]  # newest first
    page = app.client.get("/api/models/detector/versions/1").json()
    assert page["model"]["ref"] == "detector@1" and page["run"]["dataset"] == "home@1"
    assert page["gate_report"] is None
    gated = app.client.get("/api/models/detector/versions/2").json()
    assert gated["gate_report"]["verdict"] == "PASS" and gated["model"]["aliases"] == ["candidate"]
    missing = app.client.get("/api/models/detector/versions/7")
    assert missing.status_code == 404 and "detector@7" in missing.json()["error"]


def test_every_route_is_in_openapi(app: FilledApp) -> None:
    paths = app.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/events",
        "/api/events/stream",
        "/api/events/{event_id}",
        "/api/events/{event_id}/image",
        "/api/events/{event_id}/reports",
        "/api/feedback/stats",
        "/api/feedback/review-frames",
        "/api/feedback/review-frames/sample",
        "/api/feedback/throughput",
        "/api/timeline",
        "/api/datasets/{name}/diff",
        "/api/runs/{run_id}",
        "/api/models/{name}/versions/{version}",
    ):
        assert path in paths, path
    upload = paths["/api/events"]["post"]["requestBody"]["content"]
    assert {"application/x-ndjson", "multipart/form-data"} <= set(upload)


def test_the_shell_runs_only_its_own_scripts_and_nothing_comes_from_elsewhere(app: FilledApp) -> None:
    shell = app.client.get("/feed")
    policy = shell.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    assert app.client.get("/api/docs").status_code == 404  # Swagger UI would load from a CDN
    from cvcycle.api.app import STATIC_DIR

    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")
            assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
