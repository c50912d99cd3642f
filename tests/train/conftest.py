"""A small committed synthetic dataset and a config that trains on it in a second or two."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvcycle.data.synthetic import add_synthetic_clips
from cvcycle.data.versions import commit_version
from cvcycle.db import Database
from cvcycle.settings import Settings
from cvcycle.store import BlobStore

# A few steps of a narrow network at a small input: enough to exercise every part of a run.
TINY_SETS = [
    "epochs=2",
    "max_seconds=null",
    "input_size=64x96",
    "width=4",
    "batch_size=32",
    "max_detections=20",
    "num_workers=0",
]


@pytest.fixture
def day_dataset(db: Database, store: BlobStore) -> str:
    """``home@1``: three day clips of the synthetic world (two train, one val), committed."""
    add_synthetic_clips(db, store, "home", clips=3, lighting="day", seed=1)
    with db.write() as session:
        commit_version(session, "home", "three day clips")
    return "home@1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A home for manifests and the MLflow store (SQLite) of the runs under test."""
    return Settings(home=tmp_path / "home")
