"""The registry: models with versions, aliases and alias history; a version with its gate report."""

from __future__ import annotations

from typing import Any

FilledApp = Any  # the ``app`` fixture of tests/api/conftest.py


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
