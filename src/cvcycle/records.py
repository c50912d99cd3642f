"""The one results convention: services return typed records, and every shell turns them into JSON here.

A record is a frozen dataclass (or a pydantic model) whose fields are its JSON shape: the API
declares the record as the route's response model, so ``/openapi.json`` documents the shape, and
FastAPI serialises it; the CLI's ``--json`` prints ``to_jsonable(record)``, which is the same
serialisation (pydantic's), so both shells print the same document. Datetimes become ISO 8601
strings, tuples lists, nested records objects.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python


def to_jsonable(value: Any) -> Any:
    """``value`` (records, lists and dicts of them, plain values) as plain JSON values."""
    return to_jsonable_python(value)
