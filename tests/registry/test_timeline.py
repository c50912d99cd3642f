"""The loop's timeline on SQLite and PostgreSQL."""

from __future__ import annotations

from cvcycle.db import Database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.registry.timeline import loop_timeline
from cvcycle.store import BlobStore


def test_timeline_in_time_order(db: Database, store: BlobStore) -> None:
    assert loop_timeline(db) == []
    fill_sample_home(db, store)
    items = loop_timeline(db)
    kinds = [item.kind for item in items]
    assert kinds.count("dataset_version") == 1 and kinds.count("run") == 2
    assert kinds.count("gate") == 1 and kinds.count("deployment") == 2
    assert kinds[0] == "dataset_version"
    assert [item.time for item in items] == sorted(item.time for item in items)
    gate = next(item for item in items if item.kind == "gate")
    assert gate.detail == {"model": "detector", "version": 2, "verdict": "PASS", "reasons": []}
