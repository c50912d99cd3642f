"""Training runs: from a dataset version and a config to a recorded run and a new model version.

``train_model`` resolves everything that can be wrong with the request first (config, dataset
version, slices, adapter, parent), so a user error leaves no trace. Then it records a ``running``
run (config and where each value came from, dataset version and slices, seed, code version,
environment), opens a tracker run, trains, stores the best checkpoint in the blob store and, in one
transaction, marks the run ``finished``, creates the model's next version and moves its
``candidate`` alias there. If anything fails after the run was recorded, the run is marked
``failed`` with the error, no version is created, and the error propagates.

``clone_run`` trains again with a run's exact config, data and slices, changed only by ``--set``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cvcycle.data.selection import Selection, resolve_selection
from cvcycle.db import Database
from cvcycle.db.models import Dataset, ModelVersion, Run, utcnow
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.models.adapter import TrainProgress, create_adapter
from cvcycle.models.checkpoint import checkpoint_bytes
from cvcycle.models.config import TrainConfig
from cvcycle.records import fields_of
from cvcycle.refs import DatasetRef, ModelRef, format_ref
from cvcycle.registry.loading import load_model
from cvcycle.registry.versions import (
    CANDIDATE,
    create_model_version,
    resolve_model_filter,
    resolve_model_ref,
    set_alias,
)
from cvcycle.settings import Settings, redact_url
from cvcycle.store import BlobStore
from cvcycle.train.config import ResolvedConfig, parse_sets, read_config_file, resolve_config
from cvcycle.train.data import load_training_data
from cvcycle.train.environment import capture_environment, code_version, seed_everything
from cvcycle.train.tracking import Tracker, open_tracker, tracker_run_url

# Two runs of one model finishing at once on PostgreSQL may pick the same version number; the
# loser of the unique key retries with the next one.
_VERSION_ATTEMPTS = 5

RunProgressFn = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class RunResult:
    """A finished run: the version it made (``model_version``) and its alias, metrics and notes."""

    run_id: int
    status: str
    model_version: str  # detector@3
    model: str
    version: int
    alias: str
    metrics: dict[str, Any]
    config_sources: dict[str, str]
    notes: list[str] = field(default_factory=list)
    tracker_run_id: str | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.model_version


@dataclass(frozen=True)
class _Plan:
    """A training request with everything resolved: what the run row records before training starts."""

    resolved: ResolvedConfig
    train: Selection  # a committed version and the slice to train on
    val: Selection  # the same version and the slice to validate on
    parent_run_id: int | None


def _parent_config(session: Session, model_ref: str) -> tuple[dict[str, Any], int | None]:
    version = resolve_model_ref(session, model_ref)
    run = session.get(Run, version.run_id) if version.run_id is not None else None
    return (dict(run.config) if run is not None else dict(version.config)), (run.id if run else None)


def _plan(
    session: Session,
    dataset: str | DatasetRef,
    train_slice: str,
    val_slice: str,
    resolved: ResolvedConfig,
    parent_run_id: int | None,
) -> _Plan:
    train = resolve_selection(session, dataset, train_slice)
    if not train.ref.committed:
        name = train.ref.dataset.name
        raise InvalidInput(
            f"{dataset} names the working copy, which changes; a run trains on a committed version",
            hint=f"use {name}@N or {name}@latest",
        )
    val = resolve_selection(session, train.ref, val_slice)
    adapter = create_adapter(resolved.config.adapter)
    arch_defaults = dict(getattr(adapter, "default_options", {}))
    if resolved.config.init_from:
        resolved = _pin_init_from(session, resolved, arch_defaults)
    elif "parent" not in resolved.sources.values():
        resolved = _with_options(resolved, arch_defaults)
    return _Plan(resolved=resolved, train=train, val=val, parent_run_id=parent_run_id)


def train_model(
    db: Database,
    store: BlobStore,
    settings: Settings,
    *,
    dataset: str,
    train_slice: str = "train",
    val_slice: str = "val",
    config_file: Path | None = None,
    sets: Mapping[str, Any] | Sequence[str] = (),
    from_model: str | None = None,
    tracker: Tracker | None = None,
    progress: RunProgressFn | None = None,
) -> RunResult:
    """Train the next version of a model on ``dataset`` (``NAME@V``); see the module docstring.

    ``sets`` are the ``--set`` layer: ``["lr=0.005"]`` as the CLI gives them, or ``{"lr": 0.005}``.
    ``from_model`` (``detector@1``) makes that version's run config the parent layer.
    """
    file_values = read_config_file(config_file) if config_file else None
    overrides = parse_sets(sets)
    with db.read() as session:
        parent, parent_run_id = _parent_config(session, from_model) if from_model else (None, None)
        resolved = resolve_config(file_values, parent, overrides)
        plan = _plan(session, dataset, train_slice, val_slice, resolved, parent_run_id)
    return _execute(db, store, tracker or open_tracker(settings), plan, settings.manifests_dir, progress)


def clone_run(
    db: Database,
    store: BlobStore,
    settings: Settings,
    run_id: int,
    sets: Mapping[str, Any] | Sequence[str] = (),
    *,
    tracker: Tracker | None = None,
    progress: RunProgressFn | None = None,
) -> RunResult:
    """Train again with run ``run_id``'s config, dataset version and slices, changed only by ``sets``."""
    overrides = parse_sets(sets)
    with db.read() as session:
        parent = _get_run(session, run_id)
        dataset = session.get(Dataset, parent.dataset_id)
        assert dataset is not None  # a foreign key
        resolved = resolve_config(None, dict(parent.config), overrides)
        plan = _plan(
            session,
            DatasetRef(dataset.name, parent.dataset_version),
            parent.train_slice,
            parent.val_slice,
            resolved,
            parent.id,
        )
    return _execute(db, store, tracker or open_tracker(settings), plan, settings.manifests_dir, progress)


def _with_options(resolved: ResolvedConfig, defaults: Mapping[str, Any]) -> ResolvedConfig:
    """The config with ``defaults`` recorded for the options it does not set.

    An adapter's ``default_options`` (optional) shape the network of new runs. They are written
    into the run's config, so the version records the network it was built with; a config without
    one (recorded before the option existed) builds what the adapter built then. A run repeating a
    parent takes the parent's record as it stands, and one starting from a version's weights takes
    that version's choices (``_pin_init_from``).
    """
    missing = {k: v for k, v in defaults.items() if k not in resolved.config.options}
    if not missing:
        return resolved
    options = {**resolved.config.options, **missing}
    return replace(resolved, config=resolved.config.model_copy(update={"options": options}))


def _pin_init_from(
    session: Session, resolved: ResolvedConfig, arch_defaults: Mapping[str, Any]
) -> ResolvedConfig:
    """Check ``init_from`` names a version of the same adapter and record it as ``name@N``.

    An alias moves; the run must say which weights it started from, so a clone starts from the same.
    The options in ``arch_defaults`` that the run does not set are taken from that version's record,
    so its weights fit.
    """
    config = resolved.config
    assert config.init_from is not None
    version = resolve_model_ref(session, config.init_from)
    if version.adapter != config.adapter:
        raise InvalidInput(
            f"init_from {config.init_from} is a {version.adapter!r} model; "
            f"this run trains {config.adapter!r}",
            hint="start from a version of the same adapter",
        )
    pinned = format_ref(version.name, version.version)
    recorded = TrainConfig.model_validate(version.config)
    inherited = {k: recorded.options[k] for k in arch_defaults if k in recorded.options}
    options = {**inherited, **config.options}
    pairs: list[tuple[str, Any, Any]] = [
        ("input_size", config.input_size, recorded.input_size),
        ("width", config.width, recorded.width),
    ]
    theirs = recorded.options
    pairs += [(f"options.{k}", options.get(k, "unset"), theirs.get(k, "unset")) for k in arch_defaults]
    _refuse_misfit(pinned, pairs)
    return replace(resolved, config=config.model_copy(update={"init_from": pinned, "options": options}))


def _refuse_misfit(init_from: str, pairs: Sequence[tuple[str, Any, Any]]) -> None:
    problems = [f"{what} {mine} vs {theirs} in {init_from}" for what, mine, theirs in pairs if mine != theirs]
    if problems:
        raise InvalidInput(
            f"cannot start from the weights of {init_from}: " + "; ".join(problems),
            hint="train with the same classes, width, input_size and network options, or drop init_from",
        )


def _initial_weights(
    db: Database, store: BlobStore, config: TrainConfig, classes: Sequence[str], module: torch.nn.Module
) -> None:
    """Load the ``init_from`` version's weights into ``module``; anything that does not fit is named."""
    assert config.init_from is not None
    start = load_model(db, store, config.init_from)
    _refuse_misfit(config.init_from, [("classes", list(classes), list(start.classes))])
    module.load_state_dict(start.module.state_dict(), strict=True)


def _get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        last = session.scalars(select(Run.id).order_by(Run.id.desc()).limit(5)).all()
        hint = (
            f"recent runs: {', '.join(map(str, last))}" if last else "no runs yet: `cvcycle train` starts one"
        )
        raise NotFound(f"run {run_id} does not exist", hint=hint)
    return run


def _execute(
    db: Database,
    store: BlobStore,
    tracker: Tracker,
    plan: _Plan,
    manifests_dir: Path,
    progress: RunProgressFn | None,
) -> RunResult:
    config = plan.resolved.config
    code = code_version()
    environment = capture_environment()
    with db.write() as session:
        run = Run(
            adapter=config.adapter,
            model_name=config.model,
            status="running",
            config=config.to_record(),
            overrides=plan.resolved.overrides,
            config_sources=plan.resolved.sources,
            dataset_id=plan.train.ref.dataset.id,
            dataset_version=plan.train.ref.version,
            train_slice=plan.train.slice.name,
            val_slice=plan.val.slice.name,
            seed=config.seed,
            code_version=code.sha,
            code_dirty=code.dirty,
            environment=environment,
            metrics={},
            history=[],
            parent_run_id=plan.parent_run_id,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    tracker_run_id: str | None = None
    try:
        tracker_run_id = tracker.start(
            config.model,
            f"run-{run_id}",
            {
                "cvcycle.run_id": str(run_id),
                "cvcycle.dataset": plan.train.ref.label,
                "cvcycle.adapter": config.adapter,
            },
        )
        with db.write() as session:
            _get_run(session, run_id).tracker_run_id = tracker_run_id
        tracker.log_params(
            tracker_run_id,
            {
                **config.to_record(),
                "dataset": plan.train.ref.label,
                "train_slice": plan.train.slice.name,
                "val_slice": plan.val.slice.name,
                "code_version": code.sha,
                "code_dirty": code.dirty,
                "parent_run_id": plan.parent_run_id,
            },
        )
        return _train(db, store, tracker, plan, run_id, tracker_run_id, environment, manifests_dir, progress)
    except BaseException as exc:
        # Any failure, Ctrl-C included, leaves the run marked failed with its cause; then it propagates.
        _mark_failed(db, tracker, run_id, tracker_run_id, exc)
        raise


def _train(
    db: Database,
    store: BlobStore,
    tracker: Tracker,
    plan: _Plan,
    run_id: int,
    tracker_run_id: str,
    environment: dict[str, Any],
    manifests_dir: Path,
    progress: RunProgressFn | None,
) -> RunResult:
    config = plan.resolved.config
    seed_everything(config.seed)
    classes = config.classes
    if classes is None and config.init_from:
        with db.read() as session:
            classes = tuple(resolve_model_ref(session, config.init_from).classes)
    with db.read() as session:
        data, summary = load_training_data(session, store, plan.train, plan.val, manifests_dir, classes)
    adapter = create_adapter(config.adapter)
    module = adapter.build(config, data.classes)
    if config.init_from:
        _initial_weights(db, store, config, data.classes, module)

    def report(event: TrainProgress) -> None:
        if event.kind == "epoch":
            tracker.log_metrics(tracker_run_id, dict(event.metrics), step=event.epoch)
        if progress is not None:
            progress(event)

    outcome = adapter.train(module, data, config, report)
    checkpoint = checkpoint_bytes(
        outcome.state_dict, adapter=config.adapter, config=config.to_record(), classes=data.classes
    )
    blob = store.put_bytes(checkpoint)
    metrics: dict[str, Any] = {
        **outcome.metrics,
        **{k: v for k, v in summary.to_json().items() if k != "manifests"},
    }
    with tempfile.TemporaryDirectory(prefix="cvcycle-run-") as tmp:
        checkpoint_file = Path(tmp) / "checkpoint.pt"
        checkpoint_file.write_bytes(checkpoint)
        environment_file = Path(tmp) / "environment.json"
        environment_file.write_text(json.dumps(environment, indent=2, default=str))
        tracker.log_artifact(tracker_run_id, checkpoint_file)
        tracker.log_artifact(tracker_run_id, environment_file)
    tracker.log_metrics(tracker_run_id, {f"best_{k}": float(v) for k, v in outcome.metrics.items()})
    artifacts = {"checkpoint": {"key": blob.key, "size": blob.size}}
    for attempt in range(_VERSION_ATTEMPTS):
        try:
            with db.write() as session:
                run = _get_run(session, run_id)
                run.status = "finished"
                run.metrics = metrics
                run.history = outcome.history
                run.checkpoint_key = blob.key
                run.finished_at = utcnow()
                version = create_model_version(
                    session,
                    name=config.model,
                    adapter=config.adapter,
                    classes=list(data.classes),
                    config=config.to_record(),
                    artifacts=artifacts,
                    run_id=run_id,
                )
                number = version.version
                set_alias(session, config.model, CANDIDATE, number, reason=f"trained by run {run_id}")
            break
        except IntegrityError:
            if attempt == _VERSION_ATTEMPTS - 1:
                raise
    tracker.finish(tracker_run_id)
    notes = [s.describe() for s in plan.resolved.shadowed]
    if summary.frames_in_both:
        notes.append(f"{summary.frames_in_both} frames are in both the training and the validation slice")
    return RunResult(
        run_id=run_id,
        status="finished",
        model_version=format_ref(config.model, number),
        model=config.model,
        version=number,
        alias=CANDIDATE,
        metrics=metrics,
        config_sources=plan.resolved.sources,
        notes=notes,
        tracker_run_id=tracker_run_id,
        checkpoint=artifacts["checkpoint"],
    )


def _mark_failed(
    db: Database, tracker: Tracker, run_id: int, tracker_run_id: str | None, exc: BaseException
) -> None:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    with db.write() as session:
        run = _get_run(session, run_id)
        run.status = "failed"
        run.error = message + "\n" + "".join(traceback.format_exception(exc)[-3:])
        run.finished_at = utcnow()
    if tracker_run_id is not None:
        # The training error is the one to report; a tracker that fails too must not mask it.
        with contextlib.suppress(Exception):
            tracker.finish(tracker_run_id, failed=True)


@dataclass(frozen=True)
class RunSummary:
    """A run in a list: what it trained on, what it made, its metrics; ``error``'s first line."""

    id: int
    status: str
    model: str
    adapter: str
    dataset: str
    train_slice: str
    val_slice: str
    model_versions: list[str]
    metrics: dict[str, Any]
    parent_run_id: int | None
    created_at: datetime
    error: str | None


@dataclass(frozen=True)
class RunDetail(RunSummary):
    """Everything a run recorded (``error`` in full), and where the tracker shows it.

    ``tracker_url`` opens the run in the MLflow UI when one is configured; ``tracking_uri`` is the
    tracking store the run was logged to.
    """

    config: dict[str, Any]
    config_sources: dict[str, Any]
    overrides: dict[str, Any]
    seed: int
    code_version: str
    code_dirty: bool
    environment: dict[str, Any]
    history: list[Any]
    checkpoint_key: str | None
    tracker_run_id: str | None
    finished_at: datetime | None
    tracker_url: str | None
    tracking_uri: str


def _summaries(session: Session, runs: Sequence[Run]) -> list[RunSummary]:
    ids = [r.id for r in runs]
    names = dict(
        session.execute(
            select(Dataset.id, Dataset.name).where(Dataset.id.in_({r.dataset_id for r in runs}))
        ).all()
    )
    produced: dict[int, list[str]] = {}
    rows = session.execute(
        select(ModelVersion.run_id, ModelVersion.name, ModelVersion.version).where(
            ModelVersion.run_id.in_(ids)
        )
    )
    for run_id, name, number in rows:
        if run_id is not None:
            produced.setdefault(run_id, []).append(format_ref(name, number))
    return [
        RunSummary(
            id=r.id,
            status=r.status,
            model=r.model_name,
            adapter=r.adapter,
            dataset=format_ref(str(names.get(r.dataset_id, r.dataset_id)), r.dataset_version),
            train_slice=r.train_slice,
            val_slice=r.val_slice,
            model_versions=produced.get(r.id, []),
            metrics=dict(r.metrics),
            parent_run_id=r.parent_run_id,
            created_at=r.created_at,
            error=r.error.splitlines()[0] if r.error else None,
        )
        for r in runs
    ]


def list_runs(session: Session, model: str | ModelRef | None = None, limit: int = 50) -> list[RunSummary]:
    """The newest runs first: all, a model's (``detector``), or the one behind a version.

    A version is ``detector@2``, ``detector@latest`` or ``detector:production`` (as it is now).
    """
    query = select(Run).order_by(Run.id.desc()).limit(limit)
    if model is not None:
        ref = resolve_model_filter(session, model)
        query = query.where(Run.model_name == ref.name)
        if ref.number is not None:
            query = query.where(Run.id == resolve_model_ref(session, ref).run_id)
    return _summaries(session, list(session.scalars(query)))


def show_run(session: Session, run_id: int, settings: Settings) -> RunDetail:
    """Everything a run recorded: config and sources, data, code, environment, metrics, history, error."""
    run = _get_run(session, run_id)
    summary = _summaries(session, [run])[0]
    return RunDetail(
        **{**fields_of(summary), "error": run.error},
        config=run.config,
        config_sources=run.config_sources,
        overrides=run.overrides,
        seed=run.seed,
        code_version=run.code_version,
        code_dirty=run.code_dirty,
        environment=run.environment,
        history=run.history,
        checkpoint_key=run.checkpoint_key,
        tracker_run_id=run.tracker_run_id,
        finished_at=run.finished_at,
        tracker_url=tracker_run_url(settings, run.tracker_run_id),
        tracking_uri=redact_url(settings.tracking_url),
    )
