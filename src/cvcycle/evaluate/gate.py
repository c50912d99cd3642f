"""The 2x2 regression gate: a candidate against the production model on old data and on the diff.

"Old data" is a slice (``test`` by default) of the dataset version the production model was trained
on; "the diff" is the frames added since then up to the candidate's version (optionally only those
in a slice such as ``test``, see ``cvcycle.evaluate.criteria``); corner cases are further slices of
the candidate's version. Each model predicts each frame set once; every criterion is checked on those
predictions, and its difference new - old gets a paired bootstrap interval.

    data = gate_data(db, store, "home", 1, 2, corner_cases=["lighting=night"])
    report = run_gate(candidate, production, data, load_criteria(Path("gate.yaml")))
    report.passed, report.to_markdown()
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cvcycle.data.selection import resolve_selection
from cvcycle.data.versions import diff_versions
from cvcycle.db import Database
from cvcycle.db.models import Dataset, ModelVersion, Run
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.evaluate.bootstrap import Interval, paired_bootstrap
from cvcycle.evaluate.criteria import DIFF, OLD, GateCriteria, GateCriterion, load_criteria, parse_criteria
from cvcycle.evaluate.report import CriterionResult, GateReport
from cvcycle.evaluate.service import (
    DEFAULT_BATCH_SIZE,
    EvalSet,
    EvaluationResult,
    ProgressFn,
    evaluate_frames,
    load_eval_set,
    model_label,
)
from cvcycle.models.predictor import Predictor
from cvcycle.refs import DatasetRef, format_ref
from cvcycle.store import BlobStore

__all__ = [
    "GateCriteria",
    "GateData",
    "GateReport",
    "gate_data",
    "load_criteria",
    "parse_criteria",
    "record_gate_report",
    "run_gate",
]


_EMPTY_HINTS = {
    OLD: "old_slice selects frames of the production model's dataset version: choose a slice that has "
    "frames there (see `cvcycle dataset slices NAME@V`)",
    DIFF: "the candidate's dataset version adds no frames (in diff_slice) to the production model's; "
    "diff_slice: all takes every added frame",
}


@dataclass(frozen=True)
class GateData:
    """The frame sets a gate compares the models on."""

    old: EvalSet
    diff: EvalSet
    corner_cases: dict[str, EvalSet] = dataclasses.field(default_factory=dict)
    # Both models were trained on the same dataset version: there is no diff, and criteria on it
    # do not apply (a retrain with new settings on the same data is still gated on the rest).
    same_version: bool = False

    def sets(self) -> dict[str, EvalSet]:
        return {OLD: self.old, DIFF: self.diff, **self.corner_cases}


def gate_data(
    db: Database,
    store: BlobStore,
    dataset_name: str,
    old_version: int,
    new_version: int,
    corner_cases: Sequence[str] = (),
    old_slice: str = "test",
    diff_slice: str | None = None,
    progress: ProgressFn | None = None,
) -> GateData:
    """Old data (``old_slice`` of ``old_version``), the diff and the corner cases (of ``new_version``)."""
    old_ref, new_ref = DatasetRef(dataset_name, old_version), DatasetRef(dataset_name, new_version)
    if new_version < old_version:
        raise InvalidInput(
            f"the candidate was trained on {new_ref}, older than the production model's {old_ref}",
            hint="gate a candidate trained on the same or a newer version of the data",
        )
    added: list[int] = []
    with db.read() as session:
        old_selection = resolve_selection(session, DatasetRef(dataset_name, old_version), old_slice)
        diff_selection = resolve_selection(session, DatasetRef(dataset_name, new_version), diff_slice)
        corner_selections = {
            name: resolve_selection(session, diff_selection.ref, name) for name in corner_cases
        }
        if new_version != old_version:
            added = diff_versions(session, dataset_name, old_version, new_version).frames.added.ids
    old = load_eval_set(db, store, old_selection, name=OLD, progress=progress)
    diff = load_eval_set(db, store, diff_selection, name=DIFF, frame_ids=added, progress=progress)
    diff = dataclasses.replace(
        diff,
        description=f"frames added from {old_ref} to {new_ref}, slice {diff_slice or 'all'}",
    )
    corners = {
        name: load_eval_set(db, store, selection, name=name, progress=progress)
        for name, selection in corner_selections.items()
    }
    return GateData(old, diff, corners, same_version=old_version == new_version)


def _check(criterion: GateCriterion, old: EvaluationResult, new: EvaluationResult) -> tuple[bool, str]:
    """The verdict of one criterion and the sentence that explains it."""
    metric, rule = criterion.metric, criterion.rule
    new_value, old_value = new.metrics.value(metric), old.metrics.value(metric)
    if new_value is None:
        return False, f"undefined for the new model ({new.metrics.undefined_reason(metric)})"
    if rule.relative and old_value is None:
        return False, f"undefined for the old model ({old.metrics.undefined_reason(metric)})"
    bound = rule.bound(old_value)
    assert bound is not None
    passed = rule.holds(new_value, old_value)
    if not rule.relative:
        target = f"{bound:g}"
    elif rule.offset:
        target = f"old {'+' if rule.offset > 0 else '-'} {abs(rule.offset):g} = {bound:.4f}"
    else:
        target = f"old {bound:.4f}"
    holds = "holds" if passed else "does not hold"
    return passed, f"new {new_value:.4f} {rule.op} {target}: {holds}"


def run_gate(
    candidate: Predictor,
    production: Predictor,
    data: GateData,
    criteria: GateCriteria,
    *,
    candidate_label: str | None = None,
    production_label: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> GateReport:
    """Evaluate both models on every frame set once, build the 2x2 table and check every criterion."""
    sets = data.sets()
    for criterion in criteria.criteria:
        if criterion.slice not in sets:
            raise InvalidInput(
                f"{criteria.source}: criterion on {criterion.metric} needs slice {criterion.slice!r}, "
                "which the gate data lacks",
                hint=f"the gate data has {', '.join(sets)}",
            )
    for name in sorted({c.slice for c in criteria.criteria}, key=list(sets).index):
        if not sets[name].frames and not (name == DIFF and data.same_version):
            raise InvalidInput(
                f"{criteria.source}: criteria use {name}, which has no frames ({sets[name].description})",
                hint=_EMPTY_HINTS.get(
                    name, "pick a corner case that selects frames of the candidate's version"
                ),
            )
    truth_classes = {b.cls for s in sets.values() for f in s.frames for b in f.truth.boxes}
    criteria.check_classes({*candidate.classes, *production.classes, *truth_classes})
    models = {"old": production, "new": candidate}
    labels = {
        "old": production_label or model_label(production),
        "new": candidate_label or model_label(candidate),
    }
    seconds = {"decode": 0.0, "predict": 0.0, "metrics": 0.0, "bootstrap": 0.0}
    results: dict[str, dict[str, EvaluationResult]] = {}
    for name, eval_set in sets.items():
        results[name] = {}
        for role, model in models.items():
            result = evaluate_frames(
                model,
                eval_set.frames,
                eval_set.falls,
                threshold=criteria.threshold,
                batch_size=batch_size,
                data=f"{labels[role]} on {name}",
                progress=progress,
            )
            for key, value in result.seconds.items():
                seconds[key] = seconds.get(key, 0.0) + value
            results[name][role] = result

    t0 = time.perf_counter()
    intervals: dict[tuple[str, str], Interval | None] = {}
    for name in sets:
        metrics = sorted({c.metric for c in criteria.criteria if c.slice == name})
        if not metrics:
            continue
        # One stream of resamples per slice, fixed by the criteria's seed and the slice's name.
        seed = [criteria.seed, zlib.crc32(name.encode())]
        found = paired_bootstrap(
            results[name]["new"].matched,
            results[name]["old"].matched,
            metrics,
            resamples=criteria.bootstrap,
            seed=seed,
        )
        intervals.update({(name, metric): interval for metric, interval in found.items()})
        if progress is not None:
            progress("bootstrap", len(intervals), None)
    seconds["bootstrap"] = time.perf_counter() - t0

    checked = []
    for criterion in criteria.criteria:
        old, new = results[criterion.slice]["old"], results[criterion.slice]["new"]
        skipped = criterion.slice == DIFF and data.same_version
        if skipped:
            passed, reason = True, "both models were trained on the same dataset version: there is no diff"
        else:
            passed, reason = _check(criterion, old, new)
        old_value = old.metrics.value(criterion.metric)
        checked.append(
            CriterionResult(
                metric=criterion.metric,
                slice=criterion.slice,
                rule=criterion.rule.text,
                old=old_value,
                new=new.metrics.value(criterion.metric),
                bound=criterion.rule.bound(old_value),
                interval=intervals.get((criterion.slice, criterion.metric)),
                passed=passed,
                reason=reason,
                skipped=skipped,
            )
        )
    return GateReport(
        candidate=labels["new"],
        production=labels["old"],
        criteria=criteria.to_json(),
        sets={name: s.to_json() for name, s in sets.items()},
        table={name: {role: r.metrics for role, r in cells.items()} for name, cells in results.items()},
        results=tuple(checked),
        seconds=seconds,
    )


def record_gate_report(db: Database, model_version_id: int, report: GateReport) -> None:
    """Keep the report on the candidate's model version, beside its other evaluations."""
    with db.write() as session:
        version = session.get(ModelVersion, model_version_id)
        if version is None:
            raise NotFound(f"model version id {model_version_id} does not exist")
        version.gate_report = report.to_json()


@dataclass(frozen=True)
class TrainedOn:
    """A model version and the dataset version its training run used."""

    version_id: int
    label: str
    dataset_id: int
    dataset: str
    dataset_version: int


def trained_on(session: Session, ref: str) -> TrainedOn:
    """The model version a reference names and the dataset version its training run used."""
    from cvcycle.registry.versions import resolve_model_ref

    version: ModelVersion = resolve_model_ref(session, ref)
    label = format_ref(version.name, version.version)
    run = session.get(Run, version.run_id) if version.run_id is not None else None
    if run is None:
        raise InvalidInput(
            f"model {label} ({ref}) has no training run on record, so its training data is unknown",
            hint="gate models trained with `cvcycle train`",
        )
    dataset = session.get(Dataset, run.dataset_id)
    name = dataset.name if dataset is not None else str(run.dataset_id)
    return TrainedOn(version.id, label, run.dataset_id, name, run.dataset_version)


def gate_models(
    db: Database,
    store: BlobStore,
    candidate: str,
    production: str,
    criteria: GateCriteria,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> GateReport:
    """The whole gate for two model references: data, both models, the report, kept on the candidate."""
    from cvcycle.registry.loading import load_model

    with db.read() as session:
        new, old = trained_on(session, candidate), trained_on(session, production)
    if new.dataset_id != old.dataset_id:
        raise InvalidInput(
            f"{new.label} was trained on dataset {new.dataset!r} but {old.label} on {old.dataset!r}",
            hint="the gate compares models trained on versions of the same dataset",
        )
    data = gate_data(
        db,
        store,
        old.dataset,
        old.dataset_version,
        new.dataset_version,
        criteria.corner_cases,
        old_slice=criteria.old_slice,
        diff_slice=criteria.diff_slice,
        progress=progress,
    )
    report = run_gate(
        load_model(db, store, candidate),
        load_model(db, store, production),
        data,
        criteria,
        candidate_label=new.label,
        production_label=old.label,
        batch_size=batch_size,
        progress=progress,
    )
    record_gate_report(db, new.version_id, report)
    return report
