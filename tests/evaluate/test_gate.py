"""The 2x2 gate on a small synthetic dataset: v1 day clips, v2 adds night clips with dogs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cvcycle.data.datasets import lock_dataset
from cvcycle.data.selection import resolve_selection
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import ModelVersion
from cvcycle.errors import InvalidInput
from cvcycle.evaluate.gate import GateData, gate_data, parse_criteria, record_gate_report, run_gate
from cvcycle.evaluate.service import load_eval_set
from cvcycle.refs import DatasetRef
from cvcycle.store import BlobStore

CRITERIA = """
threshold: 0.5
bootstrap: 60
corner_cases: [lighting=night]
criteria:
  - {metric: map50, slice: old, rule: "new >= old - 0.01"}
  - {metric: map, slice: diff, rule: "new >= old"}
  - {metric: recall, slice: diff, rule: "new >= old"}
  - {metric: fp_per_1k_all_frames, slice: diff, rule: "new <= old"}
  - {metric: recall_fall, slice: old, rule: "new >= 0.9"}
  - {metric: recall_person, slice: lighting=night, rule: "new >= 0.8"}
"""


@pytest.fixture
def gate_sets(db: Database, store: BlobStore, add_clips: Any) -> GateData:
    """home@1: two day clips; home@2: plus two night clips with dogs (3 s, 30 frames each). Half
    train, half test, so old data and the test part of the diff are one clip each."""
    with db.write() as session:
        lock_dataset(session, "home", create=True).split_ratios = {"train": 0.5, "val": 0.0, "test": 0.5}
    add_clips("home", "day")
    with db.write() as session:
        commit_version(session, "home", "day")
    add_clips("home", "night", dogs=True)
    with db.write() as session:
        commit_version(session, "home", "night with dogs")
    return gate_data(db, store, "home", 1, 2, corner_cases=["lighting=night"], diff_slice="test")


def _all_frames(data: GateData) -> list[Any]:
    return [f for s in data.sets().values() for f in s.frames]


def test_a_better_candidate_passes_and_a_worse_one_fails_naming_the_criteria(
    db: Database, gate_sets: GateData, predictors: Any, tmp_path: Path
) -> None:
    assert {s.name: len(s.frames) for s in gate_sets.sets().values()} == {
        "old": 30,
        "diff": 30,
        "lighting=night": 60,
    }
    assert gate_sets.old.description == "home@1 slice test"
    assert gate_sets.diff.description == "frames added from home@1 to home@2, slice test"
    day_media = {f.truth.media_id for f in gate_sets.old.frames}
    assert day_media.isdisjoint(f.truth.media_id for f in gate_sets.diff.frames)
    assert gate_sets.old.falls and gate_sets.diff.falls
    assert (gate_sets.old.splits, gate_sets.diff.splits) == ({"train": 0, "val": 0, "test": 30},) * 2

    frames = _all_frames(gate_sets)
    perfect = predictors.truth(frames, version="detector@2")
    degraded = predictors.truth(frames, version="detector@1", drop_every_other=True, false_boxes=1)
    criteria = parse_criteria(CRITERIA, "gate.yaml")

    report = run_gate(perfect, degraded, gate_sets, criteria)
    assert report.passed, report.reasons
    assert report.reasons == []
    assert (report.candidate, report.production) == ("detector@2", "detector@1")
    # The 2x2: both models on old data and on the diff, every metric.
    assert report.table["old"]["new"].map50 == pytest.approx(1.0)
    assert report.table["diff"]["new"].recall == 1.0
    assert report.table["diff"]["old"].recall < 0.75
    assert report.table["old"]["old"].fp_per_1k_all_frames == pytest.approx(1000.0)  # one false box a frame
    # Each model predicted each set once, in batches: 30 + 30 + 60 frames of 16.
    assert perfect.calls == degraded.calls == 2 + 2 + 4

    # Every interval brackets the observed difference, and a clear loss lies entirely below zero.
    for result in report.results:
        assert result.interval is not None and result.difference is not None
        assert result.interval.contains(result.difference), result
        assert 0 < result.interval.resamples <= 60
    recall_diff = next(r for r in report.results if r.metric == "recall")
    assert recall_diff.interval is not None and recall_diff.interval.low > 0

    reverse = run_gate(degraded, perfect, gate_sets, criteria)
    assert not reverse.passed
    failing = {(r.metric, r.slice) for r in reverse.results if not r.passed}
    assert failing >= {
        ("map50", "old"),
        ("map", "diff"),
        ("recall", "diff"),
        ("fp_per_1k_all_frames", "diff"),
        ("recall_person", "lighting=night"),
    }
    assert len(reverse.reasons) == len(failing)
    assert any(
        reason.startswith("map50 on old: new ") and "does not hold" in reason for reason in reverse.reasons
    )

    markdown = reverse.to_markdown()
    assert "**Verdict: FAIL**" in markdown
    assert "| metric | model | old data | diff | lighting=night |" in markdown
    assert "| map50 | old model (detector@2) | 1.000 |" in markdown
    assert "|  | new model (detector@1) |" in markdown
    assert "`new >= old - 0.01`" in markdown
    data = json.loads(json.dumps(reverse.to_json()))
    assert data["verdict"] == "FAIL"
    assert data["table"]["diff"]["new"]["recall"] < 0.75
    assert data["criteria"][0]["ci95"]["low"] <= data["criteria"][0]["difference"]

    md_path, json_path = reverse.write(tmp_path / "out")
    assert md_path.read_text() == markdown
    assert json.loads(json_path.read_text())["passed"] is False

    # The report stays with the candidate's model version.
    with db.write() as session:
        version = ModelVersion(name="detector", version=1, adapter="detector")
        session.add(version)
        session.flush()
        version_id = version.id
    record_gate_report(db, version_id, reverse)
    with db.read() as session:
        stored = session.get(ModelVersion, version_id)
        assert stored is not None and stored.gate_report is not None
        assert stored.gate_report["verdict"] == "FAIL"


def test_undefined_figures_fail_and_unanswerable_criteria_are_rejected(
    db: Database, store: BlobStore, gate_sets: GateData, predictors: Any
) -> None:
    with db.read() as session:
        home_v2 = resolve_selection(session, DatasetRef("home", 2), "all")
    perfect = predictors.truth(load_eval_set(db, store, home_v2).frames)
    # Every synthetic frame shows somebody, so FP per 1,000 empty frames has nothing to count on.
    criteria = parse_criteria(
        'criteria:\n  - {metric: fp_per_1k_frames, slice: diff, rule: "new <= old"}\nbootstrap: 5\n', "g.yaml"
    )
    report = run_gate(perfect, perfect, gate_sets, criteria)
    assert not report.passed
    assert report.reasons == [
        "fp_per_1k_frames on diff: undefined for the new model (no frames without ground truth)"
    ]
    assert report.results[0].interval is None

    # Criteria the data cannot answer are rejected before any prediction.
    unknown_class = parse_criteria(
        'criteria:\n  - {metric: recall_dog, slice: old, rule: "new >= old"}\n', "g.yaml"
    )
    with pytest.raises(InvalidInput, match=r"g.yaml: criteria\[0\]: metric 'recall_dog' names unknown class"):
        run_gate(perfect, perfect, gate_sets, unknown_class)
    other_corner = parse_criteria(
        'corner_cases: [dogs=yes]\ncriteria:\n  - {metric: map, slice: dogs=yes, rule: "new >= old"}\n',
        "g.yaml",
    )
    with pytest.raises(InvalidInput, match="needs slice 'dogs=yes'"):
        run_gate(perfect, perfect, gate_sets, other_corner)
    with pytest.raises(InvalidInput, match="older than the production model's home@2"):
        gate_data(db, store, "home", 2, 1)
    whole_diff = gate_data(db, store, "home", 1, 2).diff  # by default every added frame
    assert whole_diff.splits == {"train": 30, "val": 0, "test": 30}
    assert whole_diff.description == "frames added from home@1 to home@2, slice all"
    same = gate_data(db, store, "home", 2, 2, old_slice="train")
    assert (len(same.old.frames), len(same.diff.frames)) == (60, 0)  # both train clips of v2; no diff
    # Retrained on the same data: criteria on the diff do not apply; the others still decide.
    both = parse_criteria(
        "criteria:\n"
        '  - {metric: map, slice: diff, rule: "new >= old"}\n'
        '  - {metric: map, slice: old, rule: "new >= old"}\n',
        "g.yaml",
    )
    retrain = run_gate(perfect, perfect, same, both)
    assert retrain.passed
    assert [r.verdict for r in retrain.results] == ["skipped", "pass"]
    assert "All 1 applicable criteria hold (1 skipped as not applicable)." in retrain.to_markdown()
    # A diff that is empty because of diff_slice is a mistake in the criteria, not a pass.
    no_test_frames = gate_data(db, store, "home", 1, 2, diff_slice="val")
    with pytest.raises(InvalidInput, match=r"g\.yaml: criteria use diff, which has no frames") as info:
        run_gate(perfect, perfect, no_test_frames, both)
    assert "adds no frames" in (info.value.hint or "")
