"""Training runs end to end on SQLite and PostgreSQL: what a run records, in cvcycle and in MLflow."""

from __future__ import annotations

import re
import sys
from typing import Any

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import event, select

from cvcycle.data.slices import save_slice
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import AliasChange, ModelVersion, Run
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.media import decode_jpeg
from cvcycle.models.detector import DetectorAdapter
from cvcycle.registry.loading import load_model
from cvcycle.registry.versions import LineageDataset, LineageSlices, lineage, resolve_model_ref
from cvcycle.settings import Settings
from cvcycle.store import BlobStore
from cvcycle.train.service import clone_run, list_runs, show_run, train_model

from .conftest import TINY_SETS

NETWORK = dict(DetectorAdapter.default_options)


def test_a_run_records_its_inputs_and_produces_a_candidate(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    epochs: list[int] = []
    result = train_model(
        db,
        store,
        settings,
        dataset=day_dataset,
        sets=[*TINY_SETS, "seed=7"],
        progress=lambda e: epochs.append(e.epoch) if e.kind == "epoch" else None,
    )
    assert epochs == [1, 2]
    assert (result.status, result.ref, result.alias) == ("finished", "detector@1", "candidate")
    assert {"val_map50", "val_map", "val_loss", "train_loss", "train_frames", "val_frames"} <= set(
        result.metrics
    )
    assert result.metrics["train_frames"] == 160 and result.metrics["val_frames"] == 80

    with db.read() as session:
        run = session.get(Run, result.run_id)
        assert run is not None and run.status == "finished" and run.error is None
        assert run.seed == 7 and run.config["seed"] == 7 and run.config_sources["seed"] == "set"
        assert run.config_sources["lr"] == "default" and run.overrides["width"] == 4
        assert (run.dataset_version, run.train_slice, run.val_slice) == (1, "train", "val")
        assert run.environment["python"] == sys.version.split()[0]
        assert "torch" in run.environment["packages"] and "cvcycle" in run.environment["packages"]
        assert isinstance(run.code_version, str) and isinstance(run.code_dirty, bool)
        assert [h["epoch"] for h in run.history] == [1.0, 2.0]
        assert run.finished_at is not None and run.tracker_run_id == result.tracker_run_id

        version = resolve_model_ref(session, "detector:candidate")
        assert (version.version, version.run_id) == (1, run.id)
        assert version.classes == ["fallen_person", "person"]
        assert (
            version.artifacts["checkpoint"]
            == result.checkpoint
            == {"key": run.checkpoint_key, "size": result.checkpoint["size"]}
        )
        changes = session.scalars(select(AliasChange)).all()
        assert [(c.alias, c.old_version, c.new_version) for c in changes] == [("candidate", None, 1)]

        trail = lineage(session, "detector@1")
        assert trail.dataset == LineageDataset(name="home", version=1)
        assert trail.slices == LineageSlices(train="train", val="val")
        assert trail.run and trail.run.id == run.id and trail.ancestors == []
        assert list_runs(session)[0].model_versions == ["detector@1"]
        assert show_run(session, run.id, settings).config_sources["seed"] == "set"

    client = MlflowClient(tracking_uri=settings.tracking_url)
    tracked = client.get_run(result.tracker_run_id)
    assert tracked.info.status == "FINISHED"
    assert client.get_experiment(tracked.info.experiment_id).name == "detector"
    assert tracked.data.params["seed"] == "7" and tracked.data.params["dataset"] == "home@1"
    assert tracked.data.tags["cvcycle.run_id"] == str(result.run_id)
    assert [m.step for m in client.get_metric_history(tracked.info.run_id, "val_loss")] == [1, 2]
    assert "best_val_map50" in tracked.data.metrics
    assert {a.path for a in client.list_artifacts(tracked.info.run_id)} == {
        "checkpoint.pt",
        "environment.json",
    }

    # The version loads from the registry and predicts in image pixels.
    model = load_model(db, store, "detector:candidate")
    assert model.classes == ("fallen_person", "person") and str(model.version) == "detector@1"
    assert model.input_size == (64, 96) and not model.module.training
    frame = decode_jpeg(next(store.get_bytes(k) for k in _frame_keys(db, 1)))
    found = model.predict([frame, frame], threshold=0.0)
    assert len(found) == 2 and np.array_equal(found[0].xyxy, found[1].xyxy)
    assert (found[0].xyxy[:, 2] <= frame.shape[1] + 1e-3).all()


def _frame_keys(db: Database, count: int) -> list[str]:
    from cvcycle.db.models import Frame

    with db.read() as session:
        return list(session.scalars(select(Frame.blob_key).limit(count)))


def test_a_clone_changes_only_the_overrides_and_moves_the_candidate(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    first = train_model(db, store, settings, dataset=day_dataset, sets=TINY_SETS)
    second = clone_run(db, store, settings, first.run_id, ["lr=0.005"])
    assert second.ref == "detector@2" and second.alias == "candidate"
    with db.read() as session:
        parent, child = session.get(Run, first.run_id), session.get(Run, second.run_id)
        assert parent is not None and child is not None
        assert child.parent_run_id == parent.id
        assert child.config == {**parent.config, "lr": 0.005}
        assert child.overrides == {"lr": 0.005}
        assert {k for k, v in child.config_sources.items() if v != "parent"} == {"lr"}
        assert child.config_sources["lr"] == "set"
        assert (child.dataset_id, child.dataset_version, child.train_slice, child.val_slice) == (
            parent.dataset_id,
            parent.dataset_version,
            parent.train_slice,
            parent.val_slice,
        )
        assert resolve_model_ref(session, "detector:candidate").version == 2
        moves = session.scalars(select(AliasChange).order_by(AliasChange.id)).all()
        assert [(c.old_version, c.new_version, c.reason) for c in moves] == [
            (None, 1, f"trained by run {first.run_id}"),
            (1, 2, f"trained by run {second.run_id}"),
        ]
        assert [a.id for a in lineage(session, "detector@2").ancestors] == [first.run_id]

    # --from takes the parent's config as the layer under --set, and records the parent.
    third = train_model(db, store, settings, dataset=day_dataset, from_model="detector@2", sets=["epochs=1"])
    with db.read() as session:
        child = session.get(Run, third.run_id)
        assert child is not None and child.parent_run_id == second.run_id
        assert child.config["lr"] == 0.005 and child.config_sources["lr"] == "parent"
        assert child.config["epochs"] == 1 and child.config_sources["epochs"] == "set"


def test_a_failed_run_is_marked_failed_and_makes_no_version(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    # A filter that selects no frames: the run starts, then finds nothing to learn from.
    with pytest.raises(InvalidInput, match="no boxes to learn classes from"):
        train_model(db, store, settings, dataset=day_dataset, train_slice="lighting=night", sets=TINY_SETS)
    with db.read() as session:
        run = session.scalars(select(Run)).one()
        assert run.status == "failed" and run.finished_at is not None
        assert run.error is not None and "no boxes to learn classes from" in run.error
        assert session.scalars(select(ModelVersion)).all() == []
        assert list_runs(session)[0].error is not None
    assert run.tracker_run_id is not None
    assert (
        MlflowClient(tracking_uri=settings.tracking_url).get_run(run.tracker_run_id).info.status == "FAILED"
    )


# (train_model arguments, expected exception, words of its message)
BAD_REQUESTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"dataset": "home"}, InvalidInput, "working copy"),
    ({"dataset": "home@9"}, NotFound, "version 9"),
    ({"dataset": "nowhere@1"}, NotFound, "'nowhere'"),
    ({"dataset": "home@1", "val_slice": "no-such-slice"}, NotFound, "no-such-slice"),
    ({"dataset": "home@1", "sets": ["adapter=yolo"]}, InvalidInput, "'yolo'"),
    ({"dataset": "home@1", "sets": ["lrr=1"]}, InvalidInput, "'lrr'"),
    ({"dataset": "home@1", "from_model": "detector@3"}, NotFound, "'detector'"),
    ({"dataset": "home@1", "from_model": "detector@x"}, InvalidInput, "invalid version 'x'"),
    ({"dataset": "home@1", "sets": ["init_from=detector@4"]}, NotFound, "'detector'"),
]


def test_a_bad_request_is_refused_before_any_run_is_recorded(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    for kwargs, error, message in BAD_REQUESTS:
        with pytest.raises(error, match=message):
            train_model(db, store, settings, **kwargs)
    with db.read() as session:
        assert session.scalars(select(Run)).all() == []


def test_cloning_a_run_that_does_not_exist(db: Database, store: BlobStore, settings: Settings) -> None:
    with pytest.raises(NotFound, match="run 42 does not exist"):
        clone_run(db, store, settings, 42)


def test_init_from_starts_from_the_weights_of_a_version_and_records_which(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    first = train_model(db, store, settings, dataset=day_dataset, sets=TINY_SETS)
    # A learning rate too small to move anything: the fine-tuned weights are the starting ones.
    second = train_model(
        db,
        store,
        settings,
        dataset=day_dataset,
        sets=[*TINY_SETS, "epochs=1", "lr=1e-12", "init_from=detector:candidate"],
    )
    with db.read() as session:
        run = session.get(Run, second.run_id)
        assert run is not None and run.config["init_from"] == "detector@1"  # the alias, pinned
    before = load_model(db, store, first.ref).module.state_dict()
    after = load_model(db, store, second.ref).module.state_dict()
    for key, value in before.items():
        if value.dtype.is_floating_point and "running" not in key:
            assert np.allclose(after[key].numpy(), value.numpy(), atol=1e-6), key

    # Weights that do not fit the new network are refused before a run starts, naming what differs.
    with pytest.raises(InvalidInput, match="width 8 vs 4 in detector@1"):
        train_model(
            db, store, settings, dataset=day_dataset, sets=[*TINY_SETS, "width=8", "init_from=detector@1"]
        )
    with db.read() as session:
        assert resolve_model_ref(session, "detector:candidate").version == 2
        assert len(session.scalars(select(Run)).all()) == 2


def _forget_network(db: Database, result: Any) -> None:
    """Make ``result``'s run and version look recorded before the detector's network options existed."""
    with db.write() as session:
        run = session.get(Run, result.run_id)
        version = session.scalars(select(ModelVersion).where(ModelVersion.run_id == result.run_id)).one()
        assert run is not None
        for row in (run, version):
            options = {k: v for k, v in row.config["options"].items() if k not in NETWORK}
            row.config = {**row.config, "options": options}


def test_the_network_a_version_was_built_with_stays_on_its_record(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    # A new run records the adapter's default network.
    new = train_model(db, store, settings, dataset=day_dataset, sets=TINY_SETS)
    with db.read() as session:
        assert resolve_model_ref(session, new.ref).config["options"] == NETWORK
    assert load_model(db, store, new.ref).module.stride == NETWORK["stride"]

    # A version recorded before the options existed has, and keeps, the stride-4 network.
    legacy = ["options.stride=4", "options.head=separate"]
    old = train_model(db, store, settings, dataset=day_dataset, sets=[*TINY_SETS, *legacy])
    _forget_network(db, old)
    assert load_model(db, store, old.ref).module.stride == 4
    clone = clone_run(db, store, settings, old.run_id, ["epochs=1"])
    tuned = train_model(
        db, store, settings, dataset=day_dataset, sets=[*TINY_SETS, "epochs=1", f"init_from={old.ref}"]
    )
    for result in (clone, tuned):
        with db.read() as session:
            assert resolve_model_ref(session, result.ref).config["options"] == {}
        assert load_model(db, store, result.ref).module.stride == 4

    # Starting from a new version takes its network; asking for another one is refused by name.
    again = train_model(
        db, store, settings, dataset=day_dataset, sets=[*TINY_SETS, "epochs=1", f"init_from={new.ref}"]
    )
    with db.read() as session:
        assert resolve_model_ref(session, again.ref).config["options"] == NETWORK
    with pytest.raises(InvalidInput, match=f"options.stride 8 vs unset in {old.ref}"):
        train_model(
            db,
            store,
            settings,
            dataset=day_dataset,
            sets=[*TINY_SETS, "options.stride=8", f"init_from={old.ref}"],
        )


def test_a_run_resolves_its_dataset_reference_and_slices_once(
    db: Database, store: BlobStore, settings: Settings, day_dataset: str
) -> None:
    with db.write() as session:
        save_slice(session, "home", "daylight", filter="lighting=day")
        commit_version(session, "home", "a stored slice")
    statements: list[str] = []
    listen = (db.engine, "before_cursor_execute")

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(*listen, record)
    try:
        result = train_model(
            db,
            store,
            settings,
            dataset="home@latest",
            train_slice="daylight",
            val_slice="val",
            sets=TINY_SETS,
        )
    finally:
        event.remove(*listen, record)
    assert result.status == "finished"
    dataset_lookups = [s for s in statements if re.search(r"FROM datasets WHERE datasets\.name = ", s)]
    slice_lookups = [s for s in statements if re.search(r"FROM slices WHERE slices\.dataset_id = ", s)]
    assert (len(dataset_lookups), len(slice_lookups)) == (1, 1)
    with db.read() as session:
        run = session.get(Run, result.run_id)
        assert run is not None and (run.dataset_version, run.train_slice, run.val_slice) == (
            2,
            "daylight",
            "val",
        )
