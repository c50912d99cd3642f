"""A TestClient over a real SQLite home filled by ``fill_sample_home`` (fresh for every test)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cvcycle.api import create_app
from cvcycle.db import Database, open_database
from cvcycle.demo.sample_home import SampleHome, fill_sample_home
from cvcycle.home import init_home
from cvcycle.settings import Settings
from cvcycle.store import BlobStore, open_store


@dataclass
class FilledApp:
    client: TestClient
    settings: Settings
    db: Database
    store: BlobStore
    sample: SampleHome


def filled_app(home: Path, **settings: object) -> Iterator[FilledApp]:
    config = Settings(home=home, **settings)  # type: ignore[arg-type]
    init_home(config)
    db, store = open_database(config), open_store(config)
    sample = fill_sample_home(db, store)
    with TestClient(create_app(config, db=db, store=store), base_url="http://127.0.0.1") as client:
        yield FilledApp(client, config, db, store, sample)
    db.dispose()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FilledApp]:
    yield from filled_app(tmp_path / "home")


@pytest.fixture
def small_upload_app(tmp_path: Path) -> Iterator[FilledApp]:
    """The filled app with an upload limit of 2,000 bytes."""
    yield from filled_app(tmp_path / "home", max_upload_bytes=2_000)
