"""Liveness of the API itself."""

from __future__ import annotations

from fastapi import APIRouter

import cvcycle

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": cvcycle.__version__}
