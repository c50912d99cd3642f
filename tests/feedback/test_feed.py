"""The operator's queries on SQLite and PostgreSQL: feed pages, verdicts, the review queue, throughput.

Also the pages' other read models over the same sample home: timeline, dataset catalog, registry.
"""

from __future__ import annotations

from cvcycle.annotate.assignments import open_assignment
from cvcycle.annotate.review import SpotCheck, submit_assignment
from cvcycle.data.catalog import dataset_overview, list_datasets
from cvcycle.db import Database
from cvcycle.feedback.feed import (
    event_detail,
    event_image,
    event_models,
    feed_after,
    feed_page,
    newest_event_id,
    pending_review_frames,
)
from cvcycle.feedback.reports import ReportBox, report_event, sample_review_frames
from cvcycle.feedback.tasks import complete_task, list_tasks
from cvcycle.feedback.throughput import annotation_throughput
from cvcycle.pipeline.sample_home import fill_sample_home
from cvcycle.pipeline.timeline import loop_timeline
from cvcycle.registry.overview import model_version_page, models_overview
from cvcycle.store import BlobStore


def test_feed_verdicts_and_review_queue(db: Database, store: BlobStore) -> None:
    sample = fill_sample_home(db, store)
    newest = newest_event_id(db)
    assert newest == max(sample.event_ids_with_boxes + sample.empty_event_ids)
    page = feed_page(db, limit=5)
    assert [i.event.id for i in page] == list(range(newest, newest - 5, -1))
    assert [i.event.id for i in feed_page(db, limit=2, before_id=newest - 4)] == [newest - 5, newest - 6]
    assert [i.event.id for i in feed_after(db, newest - 2)] == [newest - 1, newest]
    assert feed_after(db, newest) == []

    event_id = sample.event_ids_with_boxes[0]
    report_event(db, event_id, "false_detection", detection=0, operator="op")
    report_event(db, event_id, "confirmed", detection=1, operator="op")
    by_id = {i.event.id: i for i in feed_page(db, limit=100)}
    assert by_id[event_id].verdicts == ["false_detection", "confirmed"]
    detail = event_detail(db, event_id)
    assert [r["type"] for r in detail["reports"]] == ["false_detection", "confirmed"]
    assert detail["classes"] == ["person", "fallen_person"]
    key, size = event_image(db, event_id)
    assert store.get_bytes(key, size)[:2] == b"\xff\xd8"

    assert event_models(db) == [
        {"name": "detector", "version": 1, "model": "detector@1", "events": 12, "empty": 4}
    ]
    drawn = sample_review_frames(db, "detector", limit=2)
    assert [p["id"] for p in pending_review_frames(db)] == [d.event_id for d in drawn]
    report_event(db, drawn[0].event_id, "missed_detection", box=ReportBox("person", 1, 1, 20, 40))
    assert [p["id"] for p in pending_review_frames(db)] == [drawn[1].event_id]


def test_throughput_timeline_catalog_and_registry(db: Database, store: BlobStore) -> None:
    sample = fill_sample_home(db, store)
    for event_id in sample.event_ids_with_boxes[:3]:
        report_event(db, event_id, "false_detection", detection=0)
    first, second, third = list_tasks(db, status="open")
    complete_task(db, first.id, [{"cls": "person", "box": [1, 1, 5, 5]}], operator="ann")
    complete_task(db, second.id, [], operator="ann")
    # Work done in the annotation tool counts per submitted assignment, with its draft's labels.
    assignment = open_assignment(db, third.id, "bo", store)
    submit_assignment(db, assignment.id, assignment.rev, "bo", SpotCheck(share=0.0))
    rows = {row.annotator: row for row in annotation_throughput(db)}
    assert (rows["ann"].tasks, rows["ann"].labels) == (2, 1)
    assert (rows["bo"].tasks, rows["bo"].labels) == (1, len(assignment.draft["boxes"]))
    assert rows["bo"].labels > 0 and rows["bo"].rejected == 0

    kinds = [item.kind for item in loop_timeline(db)]
    assert kinds.count("run") == 2 and kinds.count("gate") == 1 and kinds.count("deployment") == 2
    assert kinds[0] == "dataset_version"

    with db.read() as session:
        names = [d["name"] for d in list_datasets(session)]
        assert names == ["feedback", "home"]  # the reports put their images into "feedback"
        home = dataset_overview(session, "home")
        assert home["summary"]["frames"] == 20 and home["versions"][0]["version"] == 1
        feedback = dataset_overview(session, "feedback")
        assert feedback["head"] == 0 and feedback["working_copy"]["frames"]["added"] == 3
        (model,) = models_overview(session)
        assert [v["version"] for v in model["versions"]] == [2, 1]
        assert model_version_page(session, "detector:candidate")["gate_report"]["verdict"] == "PASS"
