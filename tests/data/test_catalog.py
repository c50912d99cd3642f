"""The dataset catalog on SQLite and PostgreSQL: every dataset; one with versions, slices, pending change."""

from __future__ import annotations

import pytest

from cvcycle.data.catalog import dataset_overview, list_datasets
from cvcycle.db import Database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.errors import NotFound
from cvcycle.feedback.reports import report_event
from cvcycle.store import BlobStore


def test_catalog(db: Database, store: BlobStore) -> None:
    sample = fill_sample_home(db, store)
    report_event(db, sample.event_ids_with_boxes[0], "false_detection", detection=0)
    with db.read() as session:
        listed = {d.name: d for d in list_datasets(session)}
        assert sorted(listed) == ["feedback", "home"]  # the report put its image into "feedback"
        home_stats = listed["home"].stats
        assert listed["home"].head == 1 and home_stats is not None and home_stats["totals"]["frames"] == 20
        assert listed["feedback"].head == 0 and listed["feedback"].stats is None
        home = dataset_overview(session, "home")
        assert home.summary.frames == 20 and [v.version for v in home.versions] == [1]
        assert {"all", "train", "val", "test"} <= {s.name for s in home.slices}
        feedback = dataset_overview(session, "feedback")
        assert feedback.summary.working_copy and feedback.working_copy.frames.added == 1
        with pytest.raises(NotFound, match="nope"):
            dataset_overview(session, "nope")
