"""Annotation throughput on SQLite and PostgreSQL: the tool's submissions and tasks finished elsewhere."""

from __future__ import annotations

from cvcycle.annotate.assignments import open_assignment
from cvcycle.annotate.review import SpotCheck, review_assignment, submit_assignment
from cvcycle.annotate.tasks import complete_task, list_tasks
from cvcycle.db import Database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.feedback.reports import report_event
from cvcycle.feedback.throughput import annotation_throughput
from cvcycle.store import BlobStore


def test_throughput_per_annotator(db: Database, store: BlobStore) -> None:
    sample = fill_sample_home(db, store)
    assert annotation_throughput(db) == []
    for event_id in sample.event_ids_with_boxes[:4]:
        report_event(db, event_id, "false_detection", detection=0)
    first, second, third, fourth = list_tasks(db, status="open")
    complete_task(db, first.id, [{"cls": "person", "box": [1, 1, 5, 5]}], operator="ann")
    complete_task(db, second.id, [], operator="ann")
    # Work done in the annotation tool counts per submitted assignment, with its draft's labels.
    accepted = open_assignment(db, third.id, "bo", store)
    submit_assignment(db, accepted.id, accepted.rev, "bo", SpotCheck(share=0.0))
    checked = open_assignment(db, fourth.id, "bo", store)
    submitted = submit_assignment(db, checked.id, checked.rev, "bo", SpotCheck(share=1.0))
    review_assignment(db, submitted.id, "reject", "rita", "box too loose")
    rows = {row.annotator: row for row in annotation_throughput(db)}
    assert (rows["ann"].tasks, rows["ann"].labels, rows["ann"].rejected) == (2, 1, 0)
    boxes = len(accepted.draft["boxes"]) + len(checked.draft["boxes"])
    assert (rows["bo"].tasks, rows["bo"].labels, rows["bo"].rejected) == (2, boxes, 1)
    assert boxes > 0
