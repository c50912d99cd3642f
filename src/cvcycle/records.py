"""The one results convention: services return typed records, and every shell turns them into JSON here.

A record is a frozen dataclass (or a pydantic model) whose fields are its JSON shape: the API
declares the record as the route's response model, so ``/openapi.json`` documents the shape, and
FastAPI serialises it; the CLI's ``--json`` prints ``to_jsonable(record)``, which is the same
serialisation (pydantic's), so both shells print the same document. Datetimes become ISO 8601
strings, tuples lists, nested records objects. A record that shows more than another is a subclass
of it, built from ``fields_of`` the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic_core import to_jsonable_python


def to_jsonable(value: Any) -> Any:
    """``value`` (records, lists and dicts of them, plain values) as plain JSON values."""
    return to_jsonable_python(value)


def fields_of(record: Any) -> dict[str, Any]:
    """A dataclass record's fields by name, shallow: nested records stay records."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
