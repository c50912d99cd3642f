"""Bulk inserts: COPY on PostgreSQL, multi-row INSERT elsewhere.

A million boxes go in through COPY several times faster than through batched INSERTs; both paths
run inside the caller's transaction, so a bulk insert is as atomic as any other write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.orm import DeclarativeBase, Session

INSERT_BATCH = 20_000


def bulk_insert(session: Session, model: type[DeclarativeBase], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts of column values, all with the same keys) into ``model``'s table."""
    if not rows:
        return
    table: Table = model.__table__  # type: ignore[assignment]
    if session.get_bind().dialect.name != "postgresql":
        for start in range(0, len(rows), INSERT_BATCH):
            session.execute(insert(model), rows[start : start + INSERT_BATCH])
        return
    columns = list(rows[0])
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    quoted = ", ".join(f'"{c}"' for c in columns)
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(
                [
                    (json.dumps(row[c]) if row[c] is not None else None) if c in json_columns else row[c]
                    for c in columns
                ]
            )
