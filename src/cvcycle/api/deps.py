"""Typed dependencies shared by the routers: the database, the blob store and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cvcycle.db import Database
from cvcycle.settings import Settings
from cvcycle.store import BlobStore


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_store(request: Request) -> BlobStore:
    return request.app.state.store


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


DbDep = Annotated[Database, Depends(get_db)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
