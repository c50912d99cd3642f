"""The loop's timeline: dataset versions, runs, gate reports and deployments in time order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

FilledApp = Any  # the ``app`` fixture of tests/api/conftest.py


def test_timeline_holds_versions_runs_gates_and_deployments(app: FilledApp) -> None:
    items = app.client.get("/api/timeline").json()
    kinds = [i["kind"] for i in items]
    assert {"dataset_version", "run", "gate", "deployment"} <= set(kinds)
    times = [datetime.fromisoformat(i["time"]) for i in items]
    assert times == sorted(times)
    deployments = [i["title"] for i in items if i["kind"] == "deployment"]
    assert deployments == ["detector:production -> 1", "detector:candidate -> 2"]
    gate = next(i for i in items if i["kind"] == "gate")
    assert gate["title"] == "gate detector@2 vs detector@1: PASS"
    version_item = next(i for i in items if i["kind"] == "dataset_version")
    assert version_item["detail"]["frames"] == 20
