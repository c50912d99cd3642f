"""Shared fixtures: a migrated metadata database on SQLite and on PostgreSQL, a blob store, a home.

PostgreSQL is the server on 127.0.0.1:5432 (``CVCYCLE_TEST_PG`` overrides the server URL); each
test-run worker gets its own database, created and migrated once, and every test starts from
empty tables. Where no server answers, the PostgreSQL variants skip and say why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from cvcycle.db import Database, upgrade_database
from cvcycle.db.models import Base
from cvcycle.settings import get_settings
from cvcycle.store import BlobStore

PG_SERVER = os.environ.get("CVCYCLE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _pg_reason() -> str | None:
    try:
        engine = create_engine(f"{PG_SERVER}/postgres", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server to test against"
        return f"PostgreSQL at {PG_SERVER} is not reachable: {exc.__class__.__name__}"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database(worker_id: str) -> Iterator[str]:
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    name = f"cvcycle_test_{os.getpid()}_{worker_id}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER}/{name}"
    upgrade_database(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "cvcycle.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    _truncate(url)
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore.from_url((tmp_path / "store").as_uri())


@pytest.fixture
def home(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An initialised home for CLI tests, on the parametrised database."""
    home = tmp_path / "home"
    monkeypatch.setenv("CVCYCLE_HOME", str(home))
    monkeypatch.setenv("CVCYCLE_DB_URL", db_url)
    monkeypatch.delenv("CVCYCLE_STORE_URL", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """The xdist worker name, or "main" without xdist."""
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))


@pytest.fixture
def make_medium(db: Database, store: BlobStore):  # type: ignore[no-untyped-def]
    """Add a medium of ``frames`` frames to a dataset's working copy, without decoding a file.

    Every frame has its own real JPEG blob, so exports and manifests read real pixels.
    """
    import hashlib
    import io

    import numpy as np
    from PIL import Image

    from cvcycle.data.ingest import record_media
    from cvcycle.db.models import Media

    def jpeg(seed: int) -> Any:
        buf = io.BytesIO()
        pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, format="JPEG")
        return store.put_bytes(buf.getvalue())

    counter = iter(range(1_000_000))

    def make(name: str, frames: int = 5, *, source: str = "", **attributes: str):  # type: ignore[no-untyped-def]
        n = next(counter)
        sha = hashlib.sha256(f"{name}-{n}-{source}-{attributes}".encode()).hexdigest()
        blobs = [jpeg(n * 1000 + i) for i in range(frames)]
        blob = blobs[0]
        media = Media(
            sha256=sha,
            kind="video",
            file_name=f"m{n}.mp4",
            blob_key=blob.key,
            size=blob.size,
            width=64,
            height=48,
            fps=10.0,
            frame_count=frames,
            duration_s=frames / 10,
            codec="h264",
            source=source,
            attributes=dict(attributes),
        )
        rows = [
            {
                "index": i,
                "timestamp_s": i / 10,
                "blob_key": blobs[i].key,
                "blob_size": blobs[i].size,
                "width": 64,
                "height": 48,
            }
            for i in range(frames)
        ]
        with db.write() as session:
            return record_media(session, name, media, rows)

    return make
