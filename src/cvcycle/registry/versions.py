"""Model versions, aliases and lineage: the registry's records in the metadata database.

A model is a name with numbered versions (1, 2, ...). An alias (``candidate``, ``production``, any
name) points at one version of a model and moves; every move is an ``AliasChange`` row. References
(``detector@7``, ``detector@latest``, ``detector:production``, ``detector``; the grammar is
``cvcycle.refs``) are resolved here to the version they name now. Lineage follows a version back to
its run, and the run to its dataset version, slices and parent run. Functions take the caller's
session; the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cvcycle.db.models import AliasChange, Dataset, ModelAlias, ModelVersion, Run, utcnow
from cvcycle.errors import NotFound
from cvcycle.refs import LATEST, ModelRef, check_alias, check_model_name, format_ref, parse_model_ref


def _versions_hint(session: Session, name: str) -> str:
    numbers = session.scalars(
        select(ModelVersion.version).where(ModelVersion.name == name).order_by(ModelVersion.version)
    ).all()
    aliases = aliases_by_name(session, name)
    shown = ", ".join(str(n) for n in numbers[-20:])
    parts = [f"{name} has versions {shown}" if numbers else f"{name} has no versions"]
    if aliases:
        parts.append("aliases " + ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())))
    return "; ".join(parts)


def _unknown_model(session: Session, name: str) -> NotFound:
    names = session.scalars(select(ModelVersion.name).distinct().order_by(ModelVersion.name).limit(20)).all()
    hint = f"known models: {', '.join(names)}" if names else "no models yet: `cvcycle train` makes the first"
    return NotFound(f"model {name!r} does not exist", hint=hint)


def resolve_model_ref(session: Session, ref: str | ModelRef) -> ModelVersion:
    """The model version a reference names now; NotFound with the versions and aliases that do exist."""
    parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
    exists = session.scalar(select(ModelVersion.id).where(ModelVersion.name == parsed.name).limit(1))
    if exists is None:
        raise _unknown_model(session, parsed.name)
    number = parsed.number
    if parsed.alias is not None:
        number = session.scalar(
            select(ModelAlias.version).where(ModelAlias.name == parsed.name, ModelAlias.alias == parsed.alias)
        )
        if number is None:
            raise NotFound(
                f"{parsed} does not exist: no alias {parsed.alias!r}",
                hint=_versions_hint(session, parsed.name),
            )
    if number is None:
        number = session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.name == parsed.name)
        )
    version = session.scalar(
        select(ModelVersion).where(ModelVersion.name == parsed.name, ModelVersion.version == number)
    )
    if version is None:
        raise NotFound(
            f"{format_ref(parsed.name, number)} does not exist", hint=_versions_hint(session, parsed.name)
        )
    return version


#: What a filter by model (``--model``, ``?model=``) accepts, for help texts.
# The aliases the loop itself moves: training marks its new version the candidate, and a version that
# passes the gate (or the first one) becomes production, which pseudo-labels and sync follow.
PRODUCTION = "production"
CANDIDATE = "candidate"

MODEL_FILTER_HELP = "NAME for every version of the model; NAME@N, NAME@latest or NAME:ALIAS for one."


def resolve_model_filter(session: Session, ref: str | ModelRef) -> ModelRef:
    """What a filter by model keeps: a name and a version number, or None for every version.

    ``NAME`` keeps every version of the model and ``NAME@N`` that version; neither needs the
    registry, since events may name models it does not hold. ``NAME@latest`` and ``NAME:ALIAS``
    keep the version they name now (NotFound when the registry has none).
    """
    parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
    if parsed.alias is None and parsed.version != LATEST:
        return parsed
    row = resolve_model_ref(session, parsed)
    return ModelRef(row.name, row.version)


def next_version_number(session: Session, name: str) -> int:
    highest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name))
    return (highest or 0) + 1


def create_model_version(
    session: Session,
    *,
    name: str,
    adapter: str,
    classes: list[str],
    config: dict[str, Any],
    artifacts: dict[str, Any],
    run_id: int | None = None,
) -> ModelVersion:
    """Record the next version of ``name`` (a concurrent writer of the same name loses on the unique key)."""
    check_model_name(name)
    version = ModelVersion(
        name=name,
        version=next_version_number(session, name),
        adapter=adapter,
        run_id=run_id,
        classes=list(classes),
        config=dict(config),
        artifacts=dict(artifacts),
        evaluations={},
    )
    session.add(version)
    session.flush()
    return version


def set_alias(session: Session, name: str, alias: str, version: int, reason: str = "") -> AliasChange | None:
    """Point ``name:alias`` at ``version``, recording the move; None when it already points there."""
    check_alias(alias)
    target = resolve_model_ref(session, ModelRef(name, version=version))
    row = session.scalar(
        select(ModelAlias).where(ModelAlias.name == name, ModelAlias.alias == alias).with_for_update()
    )
    old = row.version if row is not None else None
    if old == target.version:
        return None
    if row is None:
        session.add(ModelAlias(name=name, alias=alias, version=target.version, updated_at=utcnow()))
    else:
        row.version = target.version
        row.updated_at = utcnow()
    change = AliasChange(name=name, alias=alias, old_version=old, new_version=target.version, reason=reason)
    session.add(change)
    session.flush()
    return change


def aliases_by_name(session: Session, name: str) -> dict[str, int]:
    rows = session.execute(select(ModelAlias.alias, ModelAlias.version).where(ModelAlias.name == name)).all()
    return {alias: version for alias, version in rows}


def alias_history(session: Session, name: str, alias: str | None = None) -> list[AliasChange]:
    """Alias moves of a model (or of one alias), oldest first."""
    query = select(AliasChange).where(AliasChange.name == name)
    if alias is not None:
        query = query.where(AliasChange.alias == alias)
    return list(session.scalars(query.order_by(AliasChange.id)))


@dataclass(frozen=True)
class MovedAlias:
    """What ``move_alias`` did: ``model:alias`` points at ``version``, and pointed at ``previous``."""

    model: str
    alias: str
    version: int
    previous: int | None  # ``version`` itself when nothing changed
    changed: bool


def move_alias(session: Session, ref: str | ModelRef, alias: str, reason: str = "") -> MovedAlias:
    """Point ``alias`` of the model ``ref`` names at the version it names (``detector@3``)."""
    target = resolve_model_ref(session, ref)
    name, number = target.name, target.version
    change = set_alias(session, name, alias, number, reason)
    previous = change.old_version if change else number
    return MovedAlias(model=name, alias=alias, version=number, previous=previous, changed=change is not None)


@dataclass(frozen=True)
class ModelVersionInfo:
    """A version in a list: its adapter, run, classes, the aliases pointing at it, its artifact kinds."""

    ref: str  # detector@3
    name: str
    version: int
    adapter: str
    run_id: int | None
    classes: list[str]
    aliases: list[str]
    artifacts: list[str]
    created_at: datetime


def list_model_versions(session: Session, model: str | ModelRef | None = None) -> list[ModelVersionInfo]:
    """Every version with its aliases, newest first within a name: of all models, or as a filter keeps.

    ``model`` is a filter (``resolve_model_filter``); a model or version that does not exist is NotFound.
    """
    query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
    name = None
    if model is not None:
        ref = resolve_model_filter(session, model)
        name = ref.name
        query = query.where(ModelVersion.name == name)
        if ref.number is not None:
            query = query.where(ModelVersion.version == resolve_model_ref(session, ref).version)
    versions = list(session.scalars(query))
    if name is not None and not versions:
        raise _unknown_model(session, name)
    alias_rows = select(ModelAlias.name, ModelAlias.alias, ModelAlias.version)
    if name is not None:
        alias_rows = alias_rows.where(ModelAlias.name == name)
    pointing: dict[tuple[str, int], list[str]] = {}
    for alias_name, alias, number in session.execute(alias_rows.order_by(ModelAlias.alias)):
        pointing.setdefault((alias_name, number), []).append(alias)
    return [
        ModelVersionInfo(
            ref=format_ref(v.name, v.version),
            name=v.name,
            version=v.version,
            adapter=v.adapter,
            run_id=v.run_id,
            classes=list(v.classes),
            aliases=pointing.get((v.name, v.version), []),
            artifacts=sorted(v.artifacts),
            created_at=v.created_at,
        )
        for v in versions
    ]


@dataclass(frozen=True)
class LineageModel:
    ref: str
    adapter: str
    classes: list[str]
    aliases: list[str]
    created_at: datetime


@dataclass(frozen=True)
class LineageRun:
    """A run on a version's lineage: its data, code, seed and parent, and the versions it made."""

    id: int
    status: str
    adapter: str
    dataset: str  # home@3
    train_slice: str
    val_slice: str
    seed: int
    code_version: str
    code_dirty: bool
    tracker_run_id: str | None
    parent_run_id: int | None
    model_versions: list[str]
    created_at: datetime


@dataclass(frozen=True)
class LineageDataset:
    name: str | None
    version: int


@dataclass(frozen=True)
class LineageSlices:
    train: str
    val: str


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: its run, the run's dataset version and slices, the parent runs.

    ``run``, ``dataset`` and ``slices`` are None for a version no run of ours made.
    """

    model: LineageModel
    run: LineageRun | None
    dataset: LineageDataset | None
    slices: LineageSlices | None
    ancestors: list[LineageRun]


def _lineage_run(session: Session, run: Run) -> LineageRun:
    dataset = session.get(Dataset, run.dataset_id)
    produced = session.execute(
        select(ModelVersion.name, ModelVersion.version).where(ModelVersion.run_id == run.id)
    ).all()
    return LineageRun(
        id=run.id,
        status=run.status,
        adapter=run.adapter,
        dataset=format_ref(dataset.name if dataset else str(run.dataset_id), run.dataset_version),
        train_slice=run.train_slice,
        val_slice=run.val_slice,
        seed=run.seed,
        code_version=run.code_version,
        code_dirty=run.code_dirty,
        tracker_run_id=run.tracker_run_id,
        parent_run_id=run.parent_run_id,
        model_versions=[format_ref(n, v) for n, v in produced],
        created_at=run.created_at,
    )


def lineage(session: Session, ref: str | ModelRef) -> Lineage:
    """Where a version came from: its run, the run's dataset version and slices, and its ancestors."""
    version = resolve_model_ref(session, ref)
    model = LineageModel(
        ref=format_ref(version.name, version.version),
        adapter=version.adapter,
        classes=list(version.classes),
        aliases=sorted(a for a, v in aliases_by_name(session, version.name).items() if v == version.version),
        created_at=version.created_at,
    )
    run = session.get(Run, version.run_id) if version.run_id is not None else None
    if run is None:
        return Lineage(model=model, run=None, dataset=None, slices=None, ancestors=[])
    dataset = session.get(Dataset, run.dataset_id)
    ancestors = []
    seen = {run.id}
    parent_id = run.parent_run_id
    while parent_id is not None and parent_id not in seen:
        parent = session.get(Run, parent_id)
        if parent is None:
            break
        ancestors.append(_lineage_run(session, parent))
        seen.add(parent.id)
        parent_id = parent.parent_run_id
    return Lineage(
        model=model,
        run=_lineage_run(session, run),
        dataset=LineageDataset(dataset.name if dataset else None, run.dataset_version),
        slices=LineageSlices(run.train_slice, run.val_slice),
        ancestors=ancestors,
    )
