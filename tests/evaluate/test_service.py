"""Evaluating a predictor on a slice of a dataset version: frames, truth, falls and batches read for real."""

from __future__ import annotations

from typing import Any

import pytest

from cvcycle.data.labels import BoxInput, SegmentInput, add_boxes, add_segments
from cvcycle.data.selection import Selection, resolve_selection
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.evaluate.service import evaluate_frames, evaluate_predictor, load_eval_set, model_label
from cvcycle.refs import DatasetRef, ModelRef
from cvcycle.registry.loading import LoadedModel
from cvcycle.store import BlobStore


def _cams(db: Database, slice_text: str | None) -> Selection:
    with db.read() as session:
        return resolve_selection(session, "cams@1", slice_text)


@pytest.fixture
def cams(db: Database, make_medium: Any) -> dict[str, Any]:
    """cams@1: a 12-frame medium (10 fps) with a person on every frame, a fallen person from frame 3 on,
    a fall over frames 2..4, a pseudo-label that is not ground truth, and a 3-frame medium with nothing."""
    busy = make_medium("cams", frames=12, lighting="day")
    quiet = make_medium("cams", frames=3, lighting="night")
    boxes = [BoxInput(fid, "person", 4, 4, 20, 30) for fid in busy.frame_ids]
    boxes += [BoxInput(fid, "fallen_person", 30, 20, 30, 12) for fid in busy.frame_ids[3:]]
    boxes.append(BoxInput(quiet.frame_ids[0], "person", 1, 1, 10, 10, score=0.7, source="pseudo"))
    with db.write() as session:
        add_boxes(session, "cams", boxes)
        add_segments(session, "cams", [SegmentInput(busy.media_id, "fall", 2, 4)])
        commit_version(session, "cams", "two media")
    return {"busy": busy, "quiet": quiet}


def test_load_eval_set_reads_frames_truth_and_falls(
    db: Database, store: BlobStore, cams: dict[str, Any]
) -> None:
    data = load_eval_set(db, store, _cams(db, None))
    assert len(data.frames) == 15
    assert sum(len(f.truth.boxes) for f in data.frames) == 12 + 9  # the pseudo-label is left out
    assert [f.truth.index for f in data.frames[:3]] == [0, 1, 2]
    (fall,) = data.falls
    assert (fall.start_frame, fall.end_frame, fall.tolerance_frames) == (2, 4, 10)  # 1 s at 10 fps
    night = load_eval_set(db, store, _cams(db, "lighting=night"), fall_tolerance_s=0.5)
    assert (len(night.frames), night.falls) == (3, ())
    chosen = load_eval_set(db, store, _cams(db, None), frame_ids=cams["busy"].frame_ids[:2])
    assert len(chosen.frames) == 2
    assert chosen.to_json()["frames"] == 2


def test_evaluate_predictor_scores_a_perfect_model_and_counts_empty_frames(
    db: Database, store: BlobStore, cams: dict[str, Any], predictors: Any
) -> None:
    data = load_eval_set(db, store, _cams(db, None))
    model = predictors.truth(data.frames, version="detector@7")
    result = evaluate_predictor(db, store, model, DatasetRef("cams", 1), None, threshold=0.5, batch_size=4)
    m = result.metrics
    assert model.calls == 4  # 15 frames in batches of 4
    assert (m.map, m.map50, m.precision, m.recall) == (pytest.approx(1.0), pytest.approx(1.0), 1.0, 1.0)
    assert (m.frames, m.frames_without_truth, m.fp_per_1k_frames) == (15, 3, 0.0)
    assert (m.falls, m.falls_found, m.recall_fall) == (1, 1, 1.0)
    assert result.model == "detector@7"
    assert result.to_json()["metrics"]["per_class"]["fallen_person"]["recall"] == 1.0

    noisy = predictors.truth(data.frames, false_boxes=2)
    m = evaluate_predictor(db, store, noisy, DatasetRef("cams", 1), "all").metrics
    assert m.fp_per_1k_frames == pytest.approx(2 * 3 / 3 * 1000)  # two false boxes on each empty frame
    assert m.fp_per_1k_all_frames == pytest.approx(2 * 15 / 15 * 1000)


def test_a_loaded_registry_version_is_named_by_the_version_it_is() -> None:
    # A version loaded as detector:production reports as detector@3 (it once reported "LoadedModel").
    nothing: Any = None
    loaded = LoadedModel(ModelRef("detector", 3), nothing, nothing, nothing, ("person",))
    assert model_label(loaded) == "detector@3"


def test_fall_tolerance_follows_the_frame_rate(
    db: Database, store: BlobStore, cams: dict[str, Any], predictors: Any
) -> None:
    data = load_eval_set(db, store, _cams(db, None))
    # Only frame 11 of the busy medium keeps its fallen person: 7 frames after the fall ends.
    late = [
        f if f.truth.index == 11 or f.truth.media_id != cams["busy"].media_id else _without_fallen(f)
        for f in data.frames
    ]
    model = predictors.truth(late)
    within_1s = evaluate_frames(model, data.frames, data.falls).metrics
    short = load_eval_set(db, store, _cams(db, None), fall_tolerance_s=0.5)
    within_half_s = evaluate_frames(model, short.frames, short.falls).metrics
    assert (within_1s.recall_fall, within_half_s.recall_fall) == (1.0, 0.0)


def _without_fallen(frame: Any) -> Any:
    from dataclasses import replace

    kept = tuple(b for b in frame.truth.boxes if b.cls != "fallen_person")
    return replace(frame, truth=replace(frame.truth, boxes=kept))


def test_bad_references_and_arguments_are_user_errors(
    db: Database, store: BlobStore, cams: dict[str, Any], predictors: Any
) -> None:
    data = load_eval_set(db, store, _cams(db, None))
    model = predictors.truth(data.frames)
    with pytest.raises(NotFound, match="version 9 of dataset 'cams'"):
        evaluate_predictor(db, store, model, DatasetRef("cams", 9), "test")
    with pytest.raises(NotFound, match="dataset 'nope'"):
        evaluate_predictor(db, store, model, DatasetRef("nope", 1), "test")
    with pytest.raises(InvalidInput, match="threshold"):
        evaluate_predictor(db, store, model, DatasetRef("cams", 1), "test", threshold=1.5)
    with pytest.raises(InvalidInput, match="batch size"):
        evaluate_frames(model, data.frames, batch_size=0)
