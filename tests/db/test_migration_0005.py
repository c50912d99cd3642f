"""Migration 0005 (base revisions) upgrades a 0004 database with a task and a draft in it, on SQLite
and PostgreSQL, matches the ORM, and downgrades keeping them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from cvcycle.db import upgrade_database
from cvcycle.db.migrate import alembic_config
from cvcycle.db.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet: a SQLite file, or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    migrated: str = request.getfixturevalue("pg_database")  # skips where no server answers
    server = migrated.rsplit("/", 1)[0]
    name = f"cvcycle_migration_0005_{os.getpid()}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{server}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_from_0004_keeps_tasks_and_drafts_and_matches_the_models(empty_url: str) -> None:
    upgrade_database(empty_url, "0004")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        for statement in (
            "INSERT INTO datasets (id, name, head, next_key, split_ratios, created_at) "
            "VALUES (1, 'd', 0, 1, '{}', '2026-01-01')",
            "INSERT INTO media (id, sha256, kind, file_name, blob_key, size, width, height, "
            "frame_count, codec, sample_every, source, attributes, created_at) VALUES "
            "(1, 'x', 'image', 'a.jpg', 'k', 1, 4, 4, 1, '', 1, '', '{}', '2026-01-01')",
            'INSERT INTO frames (id, media_id, "index", timestamp_s, blob_key, blob_size, width, height) '
            "VALUES (1, 1, 0, 0, 'k', 1, 4, 4)",
            "INSERT INTO tasks (id, kind, status, dataset_id, frame_id, overlap, created_at) "
            "VALUES (7, 'annotate', 'open', 1, 1, 1, '2026-01-01')",
            "INSERT INTO assignments (id, task_id, annotator, status, rev, draft, created_at, updated_at) "
            "VALUES (3, 7, 'ann', 'open', 1, '{}', '2026-01-01', '2026-01-01')",
        ):
            conn.execute(text(statement))
    upgrade_database(empty_url)
    with engine.connect() as conn:
        # Work begun before 0005 has no base revision: it is written unchecked, as it was.
        assert conn.execute(text("SELECT base_revision FROM tasks WHERE id = 7")).one() == (None,)
        assert conn.execute(text("SELECT base_revision FROM assignments WHERE id = 3")).one() == (None,)
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with engine.begin() as conn:
        config = alembic_config(empty_url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM tasks")).scalars().all() == [7]
        assert conn.execute(text("SELECT id FROM assignments")).scalars().all() == [3]
    engine.dispose()
