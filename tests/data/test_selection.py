"""Selections: a dataset reference and a slice resolved once, read alike by training and evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cvcycle.data.datasets import resolve_ref
from cvcycle.data.labels import BoxInput, add_boxes
from cvcycle.data.selection import resolve_selection
from cvcycle.data.slices import save_slice
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.evaluate.service import load_eval_set
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore
from cvcycle.train.data import load_training_data

CLASSES = ("dog", "person")


@pytest.fixture
def home_v1(db: Database, make_medium: Any) -> list[int]:
    """home@1: a night and a day medium with boxes on most frames, and a stored list slice ``picked``."""
    night = make_medium("home", 4, lighting="night")
    day = make_medium("home", 3, lighting="day")
    frames = night.frame_ids + day.frame_ids
    boxes = [
        BoxInput(fid, CLASSES[i % 2], 1.5 + i, 2.25, 10.5, 8.75 + i) for i, fid in enumerate(frames[:-1])
    ]
    boxes.append(BoxInput(frames[2], "person", 20.0, 12.5, 6.0, 9.25))
    with db.write() as session:
        add_boxes(session, "home", boxes)
        save_slice(session, "home", "picked", frame_ids=[frames[1], frames[5], frames[6]])
        commit_version(session, "home", "two media")
    return frames


@pytest.mark.parametrize("slice_text", ["all", "lighting=night", "picked", "class=person"])
def test_training_and_evaluation_read_the_same_frames_and_boxes(
    db: Database, store: BlobStore, home_v1: list[int], tmp_path: Path, slice_text: str
) -> None:
    with db.read() as session:
        selection = resolve_selection(session, "home@1", slice_text)
        data, _ = load_training_data(session, store, selection, selection, tmp_path, CLASSES)
    evaluation = load_eval_set(db, store, selection)

    trained = {
        f.frame_id: sorted(
            (data.classes[c], x0, y0, x1 - x0, y1 - y0)
            for (x0, y0, x1, y1), c in zip(f.boxes.tolist(), f.class_ids.tolist(), strict=True)
        )
        for f in data.train
    }
    evaluated = {
        f.frame_id: sorted((b.cls, b.x, b.y, b.w, b.h) for b in f.truth.boxes) for f in evaluation.frames
    }
    assert list(trained) == list(evaluated)
    assert trained == evaluated
    assert sum(len(boxes) for boxes in evaluated.values()) > 0


def test_a_selection_resolves_the_reference_and_the_slice(db: Database, home_v1: list[int]) -> None:
    with db.read() as session:
        latest = resolve_selection(session, "home@latest", "picked")
        parsed = resolve_selection(session, DatasetRef("home", 1))
        again = resolve_selection(session, resolve_ref(session, DatasetRef("home")), "split=train")
        with pytest.raises(NotFound, match="version 2"):
            resolve_selection(session, "home@2")
        with pytest.raises(NotFound, match="slice 'nope'"):
            resolve_selection(session, "home@1", "nope")
        with pytest.raises(InvalidInput, match="not key=value"):
            resolve_selection(session, "home@1", "lighting=night,oops")
    assert (latest.ref.version, latest.ref.committed, latest.slice.kind) == (1, True, "list")
    assert latest.label == "home@1 slice picked"
    assert (parsed.slice.name, parsed.slice.clauses) == ("all", ())
    assert (again.ref.committed, again.slice.kind, len(again.slice.clauses)) == (False, "filter", 1)
