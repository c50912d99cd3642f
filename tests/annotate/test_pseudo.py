"""Pseudo-labels from the production model on frames nobody has labelled."""

from __future__ import annotations

from typing import Any

import pytest

from cvcycle.annotate.assignments import open_assignment
from cvcycle.annotate.pseudo import model_pseudo_labels
from cvcycle.annotate.tasks import create_task
from cvcycle.db import Database
from cvcycle.models.adapter import create_adapter
from cvcycle.models.checkpoint import checkpoint_bytes
from cvcycle.models.config import TrainConfig
from cvcycle.registry.versions import create_model_version, set_alias
from cvcycle.store import BlobStore

CLASSES = ("person", "fallen_person")


def _deploy_untrained_detector(db: Database, store: BlobStore) -> None:
    """A real detector checkpoint (untrained: its boxes are arbitrary, but they are the model's)."""
    config = {"width": 8, "input_size": [64, 64], "max_detections": 4, "score_threshold": 0.0}
    module = create_adapter("detector").build(TrainConfig.model_validate(config), CLASSES)
    blob = store.put_bytes(
        checkpoint_bytes(module.state_dict(), adapter="detector", config=config, classes=CLASSES)
    )
    with db.write() as session:
        create_model_version(
            session,
            name="detector",
            adapter="detector",
            classes=list(CLASSES),
            config=config,
            artifacts={"checkpoint": {"key": blob.key, "size": blob.size}},
        )
        set_alias(session, "detector", "production", 1)


def test_an_unlabelled_frame_starts_from_the_production_models_boxes(
    db: Database, store: BlobStore, make_medium: Any
) -> None:
    medium = make_medium("ds", frames=2)
    assert model_pseudo_labels(db, store, medium.frame_ids[0]) == []  # no production model yet
    _deploy_untrained_detector(db, store)
    expected = model_pseudo_labels(db, store, medium.frame_ids[0])
    assert len(expected) == 4 and {b["source"] for b in expected} == {"pseudo"}
    assert all(b["cls"] in CLASSES and 0 <= b["score"] <= 1 for b in expected)

    task = create_task(db, "ds", frame_id=medium.frame_ids[0], annotators=["ann"], store=store)
    draft = open_assignment(db, task.id, "ann", store).draft
    assert [(b["cls"], b["source"]) for b in draft["boxes"]] == [(b["cls"], "pseudo") for b in expected]
    assert [b["score"] for b in draft["boxes"]] == pytest.approx([b["score"] for b in expected])


def test_a_model_without_a_checkpoint_gives_no_pseudo_labels(
    db: Database, store: BlobStore, make_medium: Any
) -> None:
    medium = make_medium("ds", frames=1)
    with db.write() as session:
        create_model_version(
            session, name="detector", adapter="detector", classes=list(CLASSES), config={}, artifacts={}
        )
        set_alias(session, "detector", "production", 1)
    task = create_task(db, "ds", frame_id=medium.frame_ids[0], annotators=["ann"], store=store)
    assert open_assignment(db, task.id, "ann", store).draft["boxes"] == []
