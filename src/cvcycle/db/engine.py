"""Engine and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes can fail at once with
"database is locked" when another writer got there first, instead of waiting its turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cvcycle.errors import InvalidInput, NotInitialised
from cvcycle.settings import Settings, get_settings

# The largest integer a column holds (SQLite INTEGER, PostgreSQL bigint): a larger id or index
# is refused as input before it reaches the driver, which would overflow.
INT64_MAX = 2**63 - 1

_IMMEDIATE = "cvcycle_sqlite_immediate"


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One metadata database: ``read()`` and ``write()`` give sessions in a transaction."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise InvalidInput(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
        self.url = url
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
            if self.dialect == "postgresql":
                # psycopg prepares a statement after five runs and PostgreSQL may then keep a
                # generic plan that checks an IN (...) list row by row: 100x slower lookups.
                kwargs["connect_args"] = {"prepare_threshold": None}
        self.engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, busy_timeout_ms)
            writer: Engine = self.engine.execution_options(**{_IMMEDIATE: True})
        else:
            writer = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closed at the end (objects stay readable, detached)."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work is committed when the block ends and rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    def check_schema(self) -> None:
        """Raise NotInitialised unless the schema is at the newest migration."""
        from cvcycle.db.migrate import current_revision, head_revision

        try:
            with self.engine.connect() as conn:
                current = current_revision(conn)
        except OperationalError as exc:
            raise NotInitialised(
                f"cannot reach the metadata database at {self._safe_url()}: {exc.orig}",
                hint="check CVCYCLE_DB_URL, then run `cvcycle init`",
            ) from exc
        head = head_revision()
        if current != head:
            state = "empty" if current is None else f"at migration {current}, newest is {head}"
            raise NotInitialised(
                f"the metadata database at {self._safe_url()} is {state}",
                hint="run `cvcycle init` to create or migrate it",
            )

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


def open_database(settings: Settings | None = None, *, check: bool = True) -> Database:
    """The database named by the settings; checks the schema is migrated unless told not to."""
    settings = settings or get_settings()
    database = Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    if check:
        database.check_schema()
    return database
