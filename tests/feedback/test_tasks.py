"""Tasks: a completed task writes exactly its labels into the working copy; a second completion conflicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cvcycle.data.datasets import resolve_ref
from cvcycle.data.ingest import IngestResult
from cvcycle.data.labels import BoxInput, add_boxes, current_label
from cvcycle.data.snapshot import iter_boxes, show_dataset
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.errors import Conflict, InvalidInput, NotFound
from cvcycle.feedback.events import PushResult
from cvcycle.feedback.reports import ReportBox, report_event
from cvcycle.feedback.tasks import complete_task, get_task, list_tasks
from cvcycle.refs import DatasetRef

Push = Callable[[list[Any]], PushResult]


@pytest.fixture
def task_id(db: Database, push: Push, medium: IngestResult, event: Callable[..., dict[str, Any]]) -> int:
    """An open task on frame 0 of the medium, in dataset "feedback", where the frame has two old boxes."""
    result = push([event(frame={"id": medium.frame_ids[0]})])
    report = report_event(db, result.event_ids[0], "missed_detection", box=ReportBox("person", 1, 1, 10, 10))
    with db.write() as s:
        add_boxes(s, "feedback", [BoxInput(medium.frame_ids[0], "person", 0, 0, 5, 5)] * 2, author="old")
    assert report.task_id is not None
    return report.task_id


def _frame_boxes(db: Database) -> list[tuple[str, float, float, float, float, str]]:
    with db.read() as s:
        ref = resolve_ref(s, DatasetRef("feedback"))
        return [(b.cls, b.x, b.y, b.w, b.h, b.source) for b in iter_boxes(s, ref)]


def test_completing_writes_exactly_the_labels_and_a_second_completion_conflicts(
    db: Database, task_id: int
) -> None:
    labels = [
        {"cls": "person", "box": [1, 1, 10, 10]},
        {"cls": "fallen_person", "box": [20, 20, 30, 12]},
    ]
    done = complete_task(db, task_id, labels, operator="anna")
    assert (done.status, done.done_by) == ("done", "anna") and done.done_at is not None
    assert done.result is not None and done.result["replaced"] == 2 and len(done.result["keys"]) == 2
    with db.read() as s:
        shown = show_dataset(s, DatasetRef("feedback"))
        assert {current_label(s, "feedback", k).author for k in done.result["keys"]} == {"anna"}
    assert shown["labels"] == {"total": 2, "per_class": {"fallen_person": 1, "person": 1}}
    assert sorted(_frame_boxes(db)) == [
        ("fallen_person", 20, 20, 30, 12, "human"),
        ("person", 1, 1, 10, 10, "human"),
    ]
    with pytest.raises(Conflict, match=f"task {task_id} is already done"):
        complete_task(db, task_id, [], operator="anna")
    assert len(_frame_boxes(db)) == 2
    assert list_tasks(db, status="open") == [] and [t.id for t in list_tasks(db, status="done")] == [task_id]

    # The labels are in the working copy: the next commit carries them.
    with db.write() as s:
        version = commit_version(s, "feedback", "operators' corrections")
    assert version.stats["totals"]["labels_per_class"] == {"fallen_person": 1, "person": 1}


def test_an_empty_label_set_clears_the_frame(db: Database, task_id: int) -> None:
    complete_task(db, task_id, [])
    assert _frame_boxes(db) == []


def test_labels_from_files(db: Database, task_id: int, tmp_path: Path) -> None:
    coco = {
        "images": [{"id": 1, "file_name": "f.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [2, 4, 6, 8]}],
        "categories": [{"id": 3, "name": "person"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    complete_task(db, task_id, path)
    assert _frame_boxes(db) == [("person", 2, 4, 6, 8, "human")]


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        ([{"cls": "person", "box": [1, 1, 10]}], InvalidInput, "label 0: box must be"),
        ([{"cls": "", "box": [1, 1, 10, 10]}], InvalidInput, "cls must be"),
        ([{"cls": "person", "box": [1, 1, -10, 10]}], InvalidInput, "size must be positive"),
        ([{"cls": "person", "box": [60, 1, 30, 10]}], InvalidInput, "outside"),
        ({"not": "labels"}, InvalidInput, "expected a list"),
        ("{broken", InvalidInput, "not valid JSON"),
    ],
)
def test_bad_labels_leave_the_task_open_and_the_frame_untouched(
    db: Database, task_id: int, tmp_path: Path, labels: Any, error: type[Exception], message: str
) -> None:
    path = tmp_path / "labels.json"
    path.write_text(labels if isinstance(labels, str) else json.dumps(labels))
    before = _frame_boxes(db)
    with pytest.raises(error, match=message):
        complete_task(db, task_id, path)
    assert get_task(db, task_id).status == "open"
    assert _frame_boxes(db) == before


def test_unknown_tasks_and_statuses(db: Database, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="task 4242 does not exist"):
        complete_task(db, 4242, [])
    with pytest.raises(NotFound, match="task 4242 does not exist"):
        get_task(db, 4242)
    with pytest.raises(NotFound, match=r"missing\.json"):
        complete_task(db, 4242, tmp_path / "missing.json")
    with pytest.raises(InvalidInput, match="not one of"):
        list_tasks(db, status="closed")
