"""Datasets: the list, one dataset, the diff of two versions, unknown names."""

from __future__ import annotations

from typing import Any

FilledApp = Any  # the ``app`` fixture of tests/api/conftest.py


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
    assert bad.status_code == 404 and bad.json()["error"] == "version 9 of dataset 'home' does not exist"
    assert app.client.get("/api/datasets/home/diff", params={"from": 1}).status_code == 422
