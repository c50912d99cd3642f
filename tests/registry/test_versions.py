"""Model versions, references, aliases and lineage, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.db.models import Dataset, Run
from cvcycle.errors import InvalidInput, NotFound
from cvcycle.refs import ModelRef
from cvcycle.registry.versions import (
    LineageDataset,
    LineageSlices,
    alias_history,
    create_model_version,
    lineage,
    list_model_versions,
    next_version_number,
    resolve_model_filter,
    resolve_model_ref,
    set_alias,
)


def add_versions(db: Database, name: str, count: int, run_id: int | None = None) -> None:
    with db.write() as session:
        for _ in range(count):
            create_model_version(
                session,
                name=name,
                adapter="detector",
                classes=["person"],
                config={"width": 4},
                artifacts={"checkpoint": {"key": "0" * 64, "size": 1}},
                run_id=run_id,
            )


def test_versions_number_from_one_per_name(db: Database) -> None:
    with db.read() as session:
        assert next_version_number(session, "detector") == 1
    add_versions(db, "detector", 3)
    add_versions(db, "other", 1)
    with db.read() as session:
        assert next_version_number(session, "detector") == 4
        assert [v.ref for v in list_model_versions(session)] == [
            "detector@3",
            "detector@2",
            "detector@1",
            "other@1",
        ]
        assert [v.version for v in list_model_versions(session, "other")] == [1]


def test_references_resolve_to_versions(db: Database) -> None:
    add_versions(db, "detector", 3)
    with db.write() as session:
        set_alias(session, "detector", "production", 2)
    with db.read() as session:
        assert resolve_model_ref(session, "detector@1").version == 1
        assert resolve_model_ref(session, "detector:production").version == 2
        assert resolve_model_ref(session, "detector").version == 3
        assert resolve_model_ref(session, "detector@latest").version == 3
        assert resolve_model_ref(session, ModelRef("detector", version=2)).version == 2


# (filter, what it keeps: the name and one version, or None for every version)
FILTERS: list[tuple[str, ModelRef]] = [
    ("detector", ModelRef("detector")),
    ("detector@1", ModelRef("detector", 1)),
    ("detector@latest", ModelRef("detector", 3)),
    ("detector:production", ModelRef("detector", 2)),
    ("unregistered", ModelRef("unregistered")),  # events may name models the registry does not hold
    ("unregistered@4", ModelRef("unregistered", 4)),
]


def test_model_filters_resolve_aliases_and_latest_now(db: Database) -> None:
    add_versions(db, "detector", 3)
    with db.write() as session:
        set_alias(session, "detector", "production", 2)
    with db.read() as session:
        for text, expected in FILTERS:
            assert resolve_model_filter(session, text) == expected, text
        for text in ("detector:staging", "unregistered@latest", "unregistered:production"):
            with pytest.raises(NotFound):
                resolve_model_filter(session, text)
        assert [v.ref for v in list_model_versions(session, "detector:production")] == ["detector@2"]
        assert [v.ref for v in list_model_versions(session, "detector@latest")] == ["detector@3"]
        with pytest.raises(NotFound, match="detector@7"):
            list_model_versions(session, "detector@7")


# (reference, words the NotFound message and hint must contain)
MISSING: list[tuple[str, list[str]]] = [
    ("detector@9", ["detector@9 does not exist", "versions 1, 2", "production -> 2"]),
    ("detector:staging", ["no alias 'staging'", "production -> 2"]),
    ("tracker@1", ["model 'tracker' does not exist", "known models: detector"]),
]


@pytest.mark.parametrize(("ref", "words"), MISSING)
def test_missing_references_say_what_exists(db: Database, ref: str, words: list[str]) -> None:
    add_versions(db, "detector", 2)
    with db.write() as session:
        set_alias(session, "detector", "production", 2)
    with db.read() as session, pytest.raises(NotFound) as caught:
        resolve_model_ref(session, ref)
    text = f"{caught.value.message} {caught.value.hint}"
    assert all(word in text for word in words), text


def test_an_empty_registry_says_how_to_start(db: Database) -> None:
    with db.read() as session, pytest.raises(NotFound) as caught:
        resolve_model_ref(session, "detector")
    assert caught.value.hint is not None and "cvcycle train" in caught.value.hint


def test_aliases_move_with_history(db: Database) -> None:
    add_versions(db, "detector", 3)
    with db.write() as session:
        assert set_alias(session, "detector", "production", 1, reason="first") is not None
        assert set_alias(session, "detector", "candidate", 3) is not None
        assert set_alias(session, "detector", "production", 2, reason="passed the gate") is not None
        assert set_alias(session, "detector", "production", 2) is None  # already there: no history row
    with db.read() as session:
        history = alias_history(session, "detector", "production")
        assert [(c.old_version, c.new_version, c.reason) for c in history] == [
            (None, 1, "first"),
            (1, 2, "passed the gate"),
        ]
        assert len(alias_history(session, "detector")) == 3
        listed = {v.version: v.aliases for v in list_model_versions(session, "detector")}
        assert listed == {3: ["candidate"], 2: ["production"], 1: []}


@pytest.mark.parametrize(
    ("alias", "version", "error"),
    [("production", 9, NotFound), ("9lives", 1, InvalidInput), ("pro duction", 1, InvalidInput)],
)
def test_bad_alias_moves_are_refused(db: Database, alias: str, version: int, error: type[Exception]) -> None:
    add_versions(db, "detector", 1)
    with db.write() as session, pytest.raises(error):
        set_alias(session, "detector", alias, version)
    with db.read() as session:
        assert alias_history(session, "detector") == []


def test_listing_an_unknown_model(db: Database) -> None:
    with db.read() as session, pytest.raises(NotFound, match="'ghost'"):
        list_model_versions(session, "ghost")


def test_lineage_follows_a_version_to_its_data_and_ancestors(db: Database, make_medium: Any) -> None:
    make_medium("home", frames=2)
    with db.write() as session:
        commit_version(session, "home", "one medium")
        dataset = session.query(Dataset).filter_by(name="home").one()
        common = {
            "adapter": "detector",
            "model_name": "detector",
            "status": "finished",
            "config": {},
            "dataset_id": dataset.id,
            "dataset_version": 1,
            "train_slice": "train",
            "val_slice": "lighting=day",
            "seed": 0,
        }
        parent = Run(**common)
        session.add(parent)
        session.flush()
        child = Run(**common, parent_run_id=parent.id)
        session.add(child)
        session.flush()
        parent_id, child_id = parent.id, child.id
    add_versions(db, "detector", 1, run_id=parent_id)
    add_versions(db, "detector", 1, run_id=child_id)
    add_versions(db, "detector", 1)  # registered by hand: no run
    with db.write() as session:
        set_alias(session, "detector", "candidate", 2)
    with db.read() as session:
        trail = lineage(session, "detector:candidate")
        assert trail.model.ref == "detector@2" and trail.model.aliases == ["candidate"]
        assert trail.run and trail.run.id == child_id and trail.run.dataset == "home@1"
        assert trail.dataset == LineageDataset(name="home", version=1)
        assert trail.slices == LineageSlices(train="train", val="lighting=day")
        assert [(a.id, a.model_versions) for a in trail.ancestors] == [(parent_id, ["detector@1"])]
        orphan = lineage(session, "detector@3")
        assert orphan.run is None and orphan.dataset is None
