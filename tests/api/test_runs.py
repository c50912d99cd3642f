"""Training runs: the list and one run, with the link to its MLflow run."""

from __future__ import annotations

from typing import Any

FilledApp = Any  # the ``app`` fixture of tests/api/conftest.py


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


def test_a_run_never_shows_the_tracking_password(app: FilledApp) -> None:
    run = app.client.get("/api/runs").json()[0]
    app.settings.tracking_uri = "postgresql+psycopg://mlflow:s3cret@db.local:5432/mlflow"
    shown = app.client.get(f"/api/runs/{run['id']}")
    assert shown.json()["tracking_uri"] == "postgresql+psycopg://mlflow:***@db.local:5432/mlflow"
    assert "s3cret" not in shown.text
