"""Tasks: a completed task writes exactly its labels into the working copy; a second completion
conflicts, and so does work on a frame that changed since the task began; untouched boxes keep
their key, revision and author."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cvcycle.annotate.assignments import get_assignment, open_assignment, save_draft
from cvcycle.annotate.documents import Draft
from cvcycle.annotate.review import SpotCheck, review_assignment, submit_assignment
from cvcycle.annotate.tasks import complete_task, create_task, get_task, list_tasks, open_task, reopen_task
from cvcycle.data.datasets import lock_dataset
from cvcycle.data.ingest import IngestResult
from cvcycle.data.labels import BoxInput, add_boxes, current_label
from cvcycle.data.selection import resolve_selection
from cvcycle.data.snapshot import ClassCounts, iter_boxes, show_dataset
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import Label
from cvcycle.errors import Conflict, InvalidInput, NotFound
from cvcycle.refs import DatasetRef

DATASET = "feedback"
ALWAYS_REVIEW = SpotCheck(share=1.0)
Box = tuple[int, int, str | None, str, float, float, float, float]  # key, rev, author, cls, x, y, w, h


@pytest.fixture
def medium(make_medium: Any) -> IngestResult:
    """Six 64x48 frames in the working copy of dataset "feedback"."""
    result: IngestResult = make_medium(DATASET, 6)
    return result


@pytest.fixture
def task_id(db: Database, medium: IngestResult) -> int:
    """An open task on frame 0 of the medium, where the frame has two old boxes."""
    with db.write() as s:
        add_boxes(s, DATASET, [BoxInput(medium.frame_ids[0], "person", 0, 0, 5, 5)] * 2, author="old")
        return open_task(s, lock_dataset(s, DATASET), medium.frame_ids[0]).id


def _frame_boxes(db: Database) -> list[tuple[str, float, float, float, float, str]]:
    with db.read() as s:
        selection = resolve_selection(s, DatasetRef(DATASET))
        return [(b.cls, b.x, b.y, b.w, b.h, b.source) for b in iter_boxes(s, selection)]


def _boxes_of(db: Database, frame_id: int) -> list[Box]:
    """Every visible box of the frame, with what identifies it: key, revision and author."""
    with db.read() as s:
        rows = s.execute(
            select(Label.key, Label.rev, Label.author, Label.cls, Label.x, Label.y, Label.w, Label.h).where(
                Label.frame_id == frame_id, Label.deleted_v.is_(None)
            )
        ).all()
    return sorted(tuple(r) for r in rows)  # type: ignore[misc]


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
        shown = show_dataset(s, DatasetRef(DATASET))
        assert {current_label(s, DATASET, k).author for k in done.result["keys"]} == {"anna"}
    assert shown.labels == ClassCounts(total=2, per_class={"fallen_person": 1, "person": 1})
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
        version = commit_version(s, DATASET, "operators' corrections")
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


def _submit_for_review(db: Database, assignment_id: int, boxes: list[dict[str, Any]], who: str) -> None:
    """Save ``boxes`` as the annotator's draft and submit it: it then waits for a reviewer."""
    draft = Draft.model_validate({"boxes": boxes})
    rev = save_draft(db, assignment_id, get_assignment(db, assignment_id).rev, draft, who).rev
    assert submit_assignment(db, assignment_id, rev, who, ALWAYS_REVIEW).status == "submitted"


def test_two_tasks_on_one_frame_the_second_acceptance_conflicts_and_nothing_is_recredited(
    db: Database, medium: IngestResult
) -> None:
    frame = medium.frame_ids[1]
    with db.write() as s:
        person, car = add_boxes(
            s,
            DATASET,
            [BoxInput(frame, "person", 1, 1, 10, 10), BoxInput(frame, "car", 20, 20, 10, 10)],
            author="importer",
        )
    first = create_task(db, DATASET, frame_id=frame, annotators=["ann"])
    second = create_task(db, DATASET, frame_id=frame, annotators=["bob"])
    assert first.base_revision == second.base_revision is not None
    ann = open_assignment(db, first.id, "ann")
    bob = open_assignment(db, second.id, "bob")
    assert {b["id"] for b in ann.draft["boxes"]} == {f"l{person}", f"l{car}"}

    # Ann moves the car and adds a dog; the person stays as it was. Bob deletes the person.
    moved = [{**b, "box": {**b["box"], "x": 30}} if b["id"] == f"l{car}" else b for b in ann.draft["boxes"]]
    dog = {"id": "b1", "cls": "dog", "box": {"x": 40, "y": 30, "w": 8, "h": 8}, "source": "human"}
    _submit_for_review(db, ann.id, [*moved, dog], "ann")
    _submit_for_review(db, bob.id, [b for b in bob.draft["boxes"] if b["id"] != f"l{person}"], "bob")

    before = _boxes_of(db, frame)
    review_assignment(db, ann.id, "accept", "rita")
    after_first = _boxes_of(db, frame)
    dog_key = max(k for k, *_ in after_first)
    assert after_first == [
        (person, 1, "importer", "person", 1, 1, 10, 10),  # untouched: same key, revision and author
        (car, 2, "ann", "car", 30, 20, 10, 10),  # edited: same key, next revision, ann's
        (dog_key, 1, "ann", "dog", 40, 30, 8, 8),
    ]
    assert before[0] == after_first[0]

    with pytest.raises(
        Conflict, match=rf"task {second.id}: frame {frame} of dataset 'feedback' changed"
    ) as exc:
        review_assignment(db, bob.id, "accept", "rita")
    assert exc.value.hint and "reopen" in exc.value.hint
    assert _boxes_of(db, frame) == after_first  # nothing lost, nothing re-credited to bob
    detail = get_task(db, second.id)
    assert detail.status == "open" and detail.assignments[0].status == "submitted"

    # Reopened, bob's draft starts from the frame as it is now; his redone work is then accepted.
    reopened = reopen_task(db, second.id, "rita")
    assert reopened.base_revision != second.base_revision
    bob = open_assignment(db, second.id, "bob")
    assert bob.status == "open" and bob.updated_by == "rita"
    assert {b["id"] for b in bob.draft["boxes"]} == {f"l{person}", f"l{car}", f"l{dog_key}"}
    _submit_for_review(db, bob.id, [b for b in bob.draft["boxes"] if b["id"] != f"l{person}"], "bob")
    review_assignment(db, bob.id, "accept", "rita")
    assert _boxes_of(db, frame) == after_first[1:]  # only the person is gone; ann's boxes stay hers


def test_direct_completion_on_a_changed_frame_is_refused_until_the_task_is_reopened(
    db: Database, task_id: int, medium: IngestResult
) -> None:
    frame = medium.frame_ids[0]
    with db.write() as s:
        key = add_boxes(s, DATASET, [BoxInput(frame, "cat", 30, 30, 6, 6)], author="carl")[0]
    before = _boxes_of(db, frame)
    labels = [{"cls": "person", "box": [0, 0, 5, 5]}, {"cls": "dog", "box": [20, 20, 5, 5]}]
    with pytest.raises(Conflict, match=rf"frame {frame} of dataset 'feedback' changed since"):
        complete_task(db, task_id, labels, operator="anna")
    assert _boxes_of(db, frame) == before and get_task(db, task_id).status == "open"

    reopen_task(db, task_id, "anna")
    done = complete_task(db, task_id, labels, operator="anna")
    assert done.result is not None
    assert (done.result["kept"], done.result["added"], done.result["deleted"]) == (1, 1, 2)
    after = _boxes_of(db, frame)
    # One old person box was given again as it was: it keeps its key, revision and author.
    assert [b for b in after if b[3] == "person"] == [before[0]]
    assert [(b[2], b[3]) for b in after] == [("old", "person"), ("anna", "dog")]
    assert key not in {b[0] for b in after}
