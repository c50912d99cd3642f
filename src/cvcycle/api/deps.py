"""Typed dependencies shared by the routers: the database, the blob store, the settings, and ``Int64``.

``Int64`` is the type of every integer a route hands to the database (ids, versions, indexes,
limits): the metadata database stores 64-bit integers, so a larger one is a 422 naming the
field rather than an overflow inside SQLite or psycopg.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval
from fastapi import Depends, Request

from cvcycle.db import INT64_MAX, Database
from cvcycle.settings import Settings
from cvcycle.store import BlobStore

Int64 = Annotated[int, Interval(ge=-INT64_MAX - 1, le=INT64_MAX)]


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_store(request: Request) -> BlobStore:
    return request.app.state.store


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


DbDep = Annotated[Database, Depends(get_db)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
