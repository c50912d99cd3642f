"""Liveness of the API itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter

import cvcycle

router = APIRouter(prefix="/api", tags=["system"])


@dataclass(frozen=True)
class Health:
    status: Literal["ok"]
    version: str  # of cvcycle


@router.get("/health")
def health() -> Health:
    return Health(status="ok", version=cvcycle.__version__)
