"""The app as a whole: every route in OpenAPI; the UI shell runs only its own scripts."""

from __future__ import annotations

from typing import Any

FilledApp = Any  # the ``app`` fixture of tests/api/conftest.py


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
