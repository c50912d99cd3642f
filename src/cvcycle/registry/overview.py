"""The registry at a glance: models with their versions and alias history, and one version in full."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cvcycle.db.models import AliasChange
from cvcycle.records import fields_of
from cvcycle.refs import ModelRef
from cvcycle.registry.versions import (
    Lineage,
    ModelVersionInfo,
    lineage,
    list_model_versions,
    resolve_model_ref,
)


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias, as the registry recorded it (``old_version`` None when it was new)."""

    alias: str
    old_version: int | None
    new_version: int | None
    reason: str
    changed_at: datetime


@dataclass(frozen=True)
class ModelOverview:
    """A model name: its versions (newest first, with aliases) and its alias moves (newest first)."""

    name: str
    versions: list[ModelVersionInfo]
    alias_history: list[AliasMove]


@dataclass(frozen=True)
class ModelVersionPage(Lineage):
    """One version in full: its lineage, config, artifacts, evaluations, export verification, gate report."""

    config: dict[str, Any]
    artifacts: dict[str, Any]
    evaluations: dict[str, Any]
    verification: dict[str, Any] | None
    gate_report: dict[str, Any] | None


def models_overview(session: Session) -> list[ModelOverview]:
    """Per model name: its versions (newest first, with aliases) and every alias move, newest first."""
    versions: dict[str, list[ModelVersionInfo]] = {}
    for info in list_model_versions(session):
        versions.setdefault(info.name, []).append(info)
    history: dict[str, list[AliasMove]] = {name: [] for name in versions}
    for change in session.scalars(select(AliasChange).order_by(AliasChange.id.desc())):
        if change.name in history:
            history[change.name].append(
                AliasMove(
                    alias=change.alias,
                    old_version=change.old_version,
                    new_version=change.new_version,
                    reason=change.reason,
                    changed_at=change.changed_at,
                )
            )
    return [ModelOverview(name, found, history[name]) for name, found in versions.items()]


def model_version_page(session: Session, ref: str | ModelRef) -> ModelVersionPage:
    """One version: lineage, artifacts, evaluations, export verification and the gate report."""
    version = resolve_model_ref(session, ref)
    trail = lineage(session, ref)
    return ModelVersionPage(
        **fields_of(trail),
        config=version.config,
        artifacts=version.artifacts,
        evaluations=version.evaluations,
        verification=version.verification,
        gate_report=version.gate_report,
    )
