"""The registry at a glance: models with their versions and alias history, and one version in full."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cvcycle.db.models import AliasChange
from cvcycle.refs import ModelRef
from cvcycle.registry.versions import lineage, list_model_versions, resolve_model_ref


def models_overview(session: Session) -> list[dict[str, Any]]:
    """Per model name: its versions (newest first, with aliases) and every alias move, newest first."""
    by_name: dict[str, dict[str, Any]] = {}
    for info in list_model_versions(session):
        entry = by_name.setdefault(info.name, {"name": info.name, "versions": [], "alias_history": []})
        entry["versions"].append(info.to_json())
    for change in session.scalars(select(AliasChange).order_by(AliasChange.id.desc())):
        if change.name in by_name:
            by_name[change.name]["alias_history"].append(
                {
                    "alias": change.alias,
                    "old_version": change.old_version,
                    "new_version": change.new_version,
                    "reason": change.reason,
                    "changed_at": change.changed_at.isoformat(),
                }
            )
    return list(by_name.values())


def model_version_page(session: Session, ref: str | ModelRef) -> dict[str, Any]:
    """One version: lineage, artifacts, evaluations, export verification and the gate report."""
    version = resolve_model_ref(session, ref)
    return {
        **lineage(session, ref),
        "config": version.config,
        "artifacts": version.artifacts,
        "evaluations": version.evaluations,
        "verification": version.verification,
        "gate_report": version.gate_report,
    }
