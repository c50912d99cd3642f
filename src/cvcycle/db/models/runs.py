"""ORM models of the model side: training runs, model versions and their aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cvcycle.db.models.base import Base, BigId, utcnow


class Run(Base):
    """One training run: what it was given (config, data, code, environment) and what it produced."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    adapter: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | finished | failed
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the resolved config the run used
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what --set changed
    config_sources: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict
    )  # key -> file|parent|set|default
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    dataset_version: Mapped[int] = mapped_column(Integer)
    train_slice: Mapped[str] = mapped_column(String(500))
    val_slice: Mapped[str] = mapped_column(String(500))
    seed: Mapped[int] = mapped_column(Integer)
    code_version: Mapped[str] = mapped_column(String(64), default="")
    code_dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)  # per-epoch metrics
    checkpoint_key: Mapped[str | None] = mapped_column(String(64))
    tracker_run_id: Mapped[str | None] = mapped_column(String(100))
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelVersion(Base):
    """A numbered version of a named model with its artifacts, evaluations and gate report.

    ``artifacts`` maps a kind to a blob: ``checkpoint``, ``onnx``, ``onnx_int8``, and
    ``tensorrt`` as ``{compute capability: key}``; each entry is ``{"key": sha256, "size": n}``.
    """

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    adapter: Mapped[str] = mapped_column(String(100))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    classes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gate_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelAlias(Base):
    """A movable name (``candidate``, ``production``, ...) for one version of a model."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("name", "alias"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasChange(Base):
    """The history of alias moves: who pointed which alias at which version, and when."""

    __tablename__ = "alias_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    alias: Mapped[str] = mapped_column(String(100))
    old_version: Mapped[int | None] = mapped_column(Integer)
    new_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
