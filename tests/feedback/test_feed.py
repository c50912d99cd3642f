"""The operator's queries on SQLite and PostgreSQL: feed pages, verdicts, event images, the review queue."""

from __future__ import annotations

from cvcycle.boxes import Box
from cvcycle.db import Database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.feedback.feed import (
    event_detail,
    event_image,
    event_models,
    feed_after,
    feed_page,
    newest_event_id,
    pending_review_frames,
)
from cvcycle.feedback.reports import report_event, sample_review_frames
from cvcycle.records import to_jsonable
from cvcycle.store import BlobStore


def test_feed_verdicts_and_review_queue(db: Database, store: BlobStore) -> None:
    sample = fill_sample_home(db, store)
    newest = newest_event_id(db)
    assert newest == max(sample.event_ids_with_boxes + sample.empty_event_ids)
    page = feed_page(db, limit=5)
    assert [i.id for i in page] == list(range(newest, newest - 5, -1))
    assert [i.id for i in feed_page(db, limit=2, before_id=newest - 4)] == [newest - 5, newest - 6]
    assert [i.id for i in feed_after(db, newest - 2)] == [newest - 1, newest]
    assert feed_after(db, newest) == []

    event_id = sample.event_ids_with_boxes[0]
    report_event(db, event_id, "false_detection", detection=0, operator="op")
    report_event(db, event_id, "confirmed", detection=1, operator="op")
    by_id = {i.id: i for i in feed_page(db, limit=100)}
    assert by_id[event_id].verdicts == ["false_detection", "confirmed"]
    detail = event_detail(db, event_id)
    assert [r.type for r in detail.reports] == ["false_detection", "confirmed"]
    assert detail.classes == ["person", "fallen_person"]
    key, size = event_image(db, event_id)
    assert store.get_bytes(key, size)[:2] == b"\xff\xd8"

    assert to_jsonable(event_models(db)) == [
        {"name": "detector", "version": 1, "model": "detector@1", "events": 12, "empty": 4}
    ]
    drawn = sample_review_frames(db, "detector", limit=2)
    assert [p.id for p in pending_review_frames(db)] == [d.event_id for d in drawn]
    report_event(db, drawn[0].event_id, "missed_detection", box=Box("person", 1, 1, 20, 40))
    assert [p.id for p in pending_review_frames(db)] == [drawn[1].event_id]
