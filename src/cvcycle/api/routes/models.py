"""The model registry: models with versions, aliases and alias history; one version with its gate report."""

from __future__ import annotations

from fastapi import APIRouter

from cvcycle.api.deps import DbDep, Int64
from cvcycle.refs import ModelRef
from cvcycle.registry.overview import ModelOverview, ModelVersionPage, model_version_page, models_overview

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("")
def models(db: DbDep) -> list[ModelOverview]:
    with db.read() as session:
        return models_overview(session)


@router.get("/{name}/versions/{version}")
def model_version(name: str, version: Int64, db: DbDep) -> ModelVersionPage:
    """Lineage, artifacts, evaluations, verification and the gate report of ``name@version``."""
    with db.read() as session:
        return model_version_page(session, ModelRef(name, version))
