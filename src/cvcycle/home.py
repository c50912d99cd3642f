"""The home of an installation: creating it (idempotent) and describing where things are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cvcycle.db.migrate import head_revision, upgrade_database
from cvcycle.settings import Settings, redact_url
from cvcycle.store import open_store


@dataclass(frozen=True)
class HomeInfo:
    """Where an installation keeps things: its home, database (password hidden), schema revision,
    blob store and experiment tracker."""

    home: Path
    database: str
    schema: str | None
    store: str
    tracking: str


def init_home(settings: Settings) -> HomeInfo:
    """Create the home directory, migrate the database to the newest schema, open the store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.manifests_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database_url)
    open_store(settings)
    return HomeInfo(
        home=settings.home,
        database=redact_url(settings.database_url),
        schema=head_revision(),
        store=redact_url(settings.blob_store_url),
        tracking=redact_url(settings.tracking_url),
    )
