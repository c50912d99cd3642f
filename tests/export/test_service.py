"""``export_model_version`` and ``cvcycle model export``: export, verify on validation frames, record.

These run once the registry (``cvcycle.registry.versions`` / ``loading``) is in the tree. The model
version is registered the way training registers one: a run over a committed dataset version, and
the built-in detector's weights as the ``checkpoint`` artifact.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
import typer
from typer.testing import CliRunner

from cvcycle.db import Database
from cvcycle.records import to_jsonable
from cvcycle.store import BlobStore

pytest.importorskip("cvcycle.registry.loading", reason="the registry's load_model is not in this tree yet")

CLASSES = ["person", "fallen_person"]


def register_detector(db: Database, store: BlobStore, make_medium: Any, *, val_slice: str = "all") -> None:
    """detector@1: an untrained built-in detector, run on home@1 (three media of five frames)."""
    from cvcycle.data.versions import commit_version
    from cvcycle.db.models import Dataset, ModelVersion, Run
    from cvcycle.models.adapter import create_adapter
    from cvcycle.train.config import TrainConfig

    for _ in range(3):
        make_medium("home", frames=5)
    with db.write() as session:
        commit_version(session, "home", "three media")
    config = TrainConfig(input_size=(64, 96), width=8, max_detections=20)
    module = create_adapter("detector").build(config, CLASSES)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    checkpoint = store.put_bytes(buffer.getvalue())
    with db.write() as session:
        dataset = session.query(Dataset).filter_by(name="home").one()
        run = Run(
            adapter="detector",
            model_name="detector",
            status="finished",
            config=config.model_dump(mode="json"),
            dataset_id=dataset.id,
            dataset_version=1,
            train_slice="all",
            val_slice=val_slice,
            seed=0,
        )
        session.add(run)
        session.flush()
        session.add(
            ModelVersion(
                name="detector",
                version=1,
                adapter="detector",
                run_id=run.id,
                classes=CLASSES,
                config=config.model_dump(mode="json"),
                artifacts={"checkpoint": {"key": checkpoint.key, "size": checkpoint.size}},
            )
        )


def test_export_verifies_on_the_validation_frames_and_records_both(
    db: Database, store: BlobStore, make_medium: Any, tmp_path: Path
) -> None:
    from cvcycle.db.models import ModelVersion
    from cvcycle.export.service import export_model_version
    from cvcycle.registry.publish import publish_model_version

    register_detector(db, store, make_medium)
    result = export_model_version(db, store, "detector@1", frames_for_verification=9)
    assert result.passed, result.failures
    assert result.model == "detector@1"
    report = result.verification
    assert report.dataset == "home@1" and report.slice == "all" and len(report.frame_ids) == 9
    assert report.samples == 9 and report.batches == 2  # a batch of one, then eight
    assert {o.name for o in report.outputs} == {"boxes", "scores", "classes"}
    graph = onnx.load_from_string(store.get_bytes(result.onnx.key, result.onnx.size))
    assert [i.name for i in graph.graph.input] == ["images"]

    with db.read() as session:
        row = session.query(ModelVersion).filter_by(name="detector", version=1).one()
        assert row.artifacts["onnx"] == to_jsonable(result.onnx) and "checkpoint" in row.artifacts
        assert row.verification == to_jsonable(report) and row.verification["passed"] is True

    published = publish_model_version(db, store, "detector@1", tmp_path / "repo")
    assert published.model_file.read_bytes() == store.get_bytes(result.onnx.key)


def test_a_run_without_validation_frames_cannot_verify(
    db: Database, store: BlobStore, make_medium: Any
) -> None:
    from cvcycle.errors import InvalidInput
    from cvcycle.export.service import export_model_version

    register_detector(db, store, make_medium, val_slice="lighting=never")
    with pytest.raises(InvalidInput, match="has no frames to verify detector@1's export on"):
        export_model_version(db, store, "detector@1")


def test_the_model_export_command(
    db: Database, store: BlobStore, home: Path, make_medium: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cvcycle.cli.models import register
    from cvcycle.settings import get_settings

    monkeypatch.setenv("CVCYCLE_STORE_URL", store.url)  # the command reads the frames the test made
    get_settings.cache_clear()
    register_detector(db, store, make_medium)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["model", "export", "detector@1", "--frames", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verification"]["samples"] == 4
    result = CliRunner().invoke(app, ["model", "export", "detector@9"])
    assert result.exit_code == 2
