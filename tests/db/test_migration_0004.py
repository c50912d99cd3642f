"""Migration 0004 (annotation) upgrades a 0003 database with tasks in it, and matches the ORM."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from cvcycle.db import upgrade_database
from cvcycle.db.migrate import alembic_config
from cvcycle.db.models import Base


def test_upgrade_from_0003_keeps_tasks_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, head, next_key, split_ratios, created_at) "
                "VALUES (1, 'd', 0, 1, '{}', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO media (id, sha256, kind, file_name, blob_key, size, width, height, "
                "frame_count, codec, sample_every, source, attributes, created_at) VALUES "
                "(1, 'x', 'image', 'a.jpg', 'k', 1, 4, 4, 1, '', 1, '', '{}', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                'INSERT INTO frames (id, media_id, "index", timestamp_s, blob_key, blob_size, width, '
                "height) VALUES (1, 1, 0, 0, 'k', 1, 4, 4)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tasks (id, kind, status, dataset_id, frame_id, created_at) "
                "VALUES (7, 'annotate', 'open', 1, 1, '2026-01-01')"
            )
        )
    upgrade_database(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT overlap, media_id FROM tasks WHERE id = 7")).one() == (1, None)
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM tasks")).scalars().all() == [7]
    engine.dispose()
