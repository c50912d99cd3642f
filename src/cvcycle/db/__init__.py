"""The metadata database: engine and sessions (``engine``), ORM models (``models``), migrations."""

from cvcycle.db.engine import INT64_MAX, Database, open_database
from cvcycle.db.migrate import upgrade_database

__all__ = ["INT64_MAX", "Database", "open_database", "upgrade_database"]
