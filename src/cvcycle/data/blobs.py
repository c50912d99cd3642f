"""Which blobs the metadata references, and the two store-wide checks built on it: verify and gc.

The blob store knows bytes and never rows; the database knows rows and never bytes. Joining them
needs both, so it lives here: ``data`` is the lowest package the layers contract (pyproject.toml)
lets import ``db`` and ``store`` (``store`` sits below ``db`` and cannot look up). Every place a
row records a blob is listed once, in :data:`BLOB_KEY_COLUMNS` and :data:`BLOB_KEY_DOCUMENTS`;
``referenced_keys`` reads them all, and a meta-test fails when a model gains a digest column that
neither list nor :data:`NOT_BLOB_KEYS` names.

- :func:`verify_blobs` re-hashes every blob (or the ones given) and reports, by key, those that are
  damaged, and those a row references that the store lacks, with the rows that use each.
- :func:`collect_garbage` finds blobs no row references that are older than a grace period (the
  leftovers of imports killed between their puts and their commit), and deletes them when asked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from cvcycle.db.engine import Database
from cvcycle.db.models import Event, Frame, Media, ModelVersion, Run
from cvcycle.errors import CorruptBlob, InvalidInput, NotFound
from cvcycle.refs import format_ref
from cvcycle.store import BlobInfo, BlobStore
from cvcycle.store.layout import check_key, is_key

if TYPE_CHECKING:
    from cvcycle.data.ingest import ProgressFn  # ingest imports this module

#: The grace period of ``cvcycle store gc``: a blob younger than this is kept even if nothing
#: references it yet, because an import puts its blobs before it commits the rows naming them.
DEFAULT_GRACE_S = 24 * 3600.0

_IN_CHUNK = 500  # keys per IN (...) list: well under every dialect's parameter limit


@dataclass(frozen=True)
class BlobColumn:
    """A column holding one blob key per row, and how to name the row that holds it."""

    key: InstrumentedAttribute[Any]
    row_id: InstrumentedAttribute[int]
    owner: str  # "frame", then the row id: "frame 12"


#: Every column whose value is a blob key.
BLOB_KEY_COLUMNS: tuple[BlobColumn, ...] = (
    BlobColumn(Frame.blob_key, Frame.id, "frame"),
    BlobColumn(Media.blob_key, Media.id, "medium"),
    BlobColumn(Event.snapshot_key, Event.id, "snapshot of event"),
    BlobColumn(Run.checkpoint_key, Run.id, "checkpoint of run"),
)

#: JSON columns in which every 64-hex string, at any depth, is a blob key: a model version's
#: artifacts (``{"onnx": {"key": ..., "size": ...}, "tensorrt": {"8.9": {...}}, ...}``).
BLOB_KEY_DOCUMENTS: tuple[InstrumentedAttribute[Any], ...] = (ModelVersion.artifacts,)

#: Digest-like columns that are not blob references, and why.
NOT_BLOB_KEYS: dict[InstrumentedAttribute[Any], str] = {
    Media.sha256: "the medium's identity; its bytes are referenced by Media.blob_key",
    Run.code_version: "a git commit, not a blob",
}


def referenced_keys(session: Session, among: Iterable[str] | None = None) -> set[str]:
    """Every blob key some row references; with ``among``, only those of ``among``.

    Without ``among`` the whole set is read into memory (about 120 bytes per frame: 120 MB for a
    million frames), one scan per table, which is cheaper than per-key lookups on unindexed columns.
    """
    wanted = None if among is None else sorted(set(among))
    found: set[str] = set()
    for column in BLOB_KEY_COLUMNS:
        query = select(column.key).where(column.key.is_not(None))
        if wanted is None:
            found.update(session.scalars(query.execution_options(yield_per=10_000)))
        for chunk in _chunks(wanted or []):
            found.update(session.scalars(query.where(column.key.in_(chunk))))
    for document in BLOB_KEY_DOCUMENTS:
        for value in session.scalars(select(document)):
            found.update(key for _, key in _keys_in(value))
    return found if wanted is None else found & set(wanted)


def blob_users(session: Session, keys: Iterable[str]) -> dict[str, list[str]]:
    """The rows that reference each of ``keys``, named for people: ``frame 12``, ``detector@2 onnx``."""
    wanted = sorted(set(keys))
    users: dict[str, list[str]] = {key: [] for key in wanted}
    if not wanted:
        return users
    for column in BLOB_KEY_COLUMNS:
        for chunk in _chunks(wanted):
            rows = session.execute(
                select(column.key, column.row_id).where(column.key.in_(chunk)).order_by(column.row_id)
            )
            for key, row_id in rows:
                users[key].append(f"{column.owner} {row_id}")
    for name, version, artifacts in session.execute(
        select(ModelVersion.name, ModelVersion.version, ModelVersion.artifacts).order_by(ModelVersion.id)
    ):
        for path, key in _keys_in(artifacts):
            if key in users:
                users[key].append(f"{format_ref(name, version)} {path}")
    return users


@dataclass(frozen=True)
class BlobProblem:
    """A blob that fails verification: damaged bytes, or referenced and absent."""

    key: str
    problem: Literal["corrupt", "missing"]
    detail: str
    used_by: tuple[str, ...]  # the rows that reference it, named as blob_users names them

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "problem": self.problem,
            "detail": self.detail,
            "used_by": list(self.used_by),
        }


@dataclass(frozen=True)
class VerifyReport:
    checked: int  # blobs re-hashed
    bytes: int  # bytes re-hashed
    problems: tuple[BlobProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes": self.bytes,
            "corrupt": sum(p.problem == "corrupt" for p in self.problems),
            "missing": sum(p.problem == "missing" for p in self.problems),
            "problems": [p.to_json() for p in self.problems],
        }


def verify_blobs(
    db: Database, store: BlobStore, keys: Sequence[str] | None = None, progress: ProgressFn | None = None
) -> VerifyReport:
    """Re-hash the blobs ``keys`` (default: every stored blob) and report the bad ones by key.

    Without ``keys``, the blobs some row references but the store lacks are reported as missing
    too. Blobs are hashed by ``store.concurrency`` threads (sha256 and I/O release the GIL).
    """
    missing: set[str] = set()
    if keys:
        targets = sorted({check_key(key) for key in keys})
    else:
        # References first, then the listing: a blob referenced by then was put before its rows
        # were committed, so it is listed unless it is truly gone.
        with db.read() as session:
            referenced = referenced_keys(session)
        targets = list(store.iter_keys())
        missing = referenced.difference(targets)
    details: dict[str, tuple[Literal["corrupt", "missing"], str]] = {
        key: ("missing", f"blob {key} is referenced but not in {store.url}") for key in missing
    }
    checked = hashed = 0
    with ThreadPoolExecutor(max_workers=store.concurrency, thread_name_prefix="cvcycle-verify") as pool:
        for done, (key, outcome) in enumerate(pool.map(lambda k: (k, _verify_one(store, k)), targets), 1):
            if isinstance(outcome, int):
                checked += 1
                hashed += outcome
            else:
                details[key] = outcome
            if progress is not None:
                progress("verifying blobs", done, len(targets))
    with db.read() as session:
        users = blob_users(session, details)
    problems = tuple(
        BlobProblem(key, kind, detail, tuple(users[key])) for key, (kind, detail) in sorted(details.items())
    )
    return VerifyReport(checked, hashed, problems)


def _verify_one(store: BlobStore, key: str) -> int | tuple[Literal["corrupt", "missing"], str]:
    try:
        return store.verify(key)
    except CorruptBlob as exc:
        return "corrupt", exc.message
    except NotFound as exc:
        return "missing", exc.message


@dataclass(frozen=True)
class GcReport:
    deleted: bool  # False for a dry run: ``blobs`` lists what would go
    grace_s: float
    blobs: tuple[BlobInfo, ...]  # unreferenced and older than the grace period
    young: int  # unreferenced but within the grace period (or of unknown age): kept
    young_bytes: int
    temporaries: int  # leftovers of killed local writes older than the grace period

    @property
    def count(self) -> int:
        return len(self.blobs)

    @property
    def bytes(self) -> int:
        return sum(b.size for b in self.blobs)

    def to_json(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "grace_s": self.grace_s,
            "count": self.count,
            "bytes": self.bytes,
            "blobs": [{"key": b.key, "size": b.size, "modified": _iso(b.modified)} for b in self.blobs],
            "young": {"count": self.young, "bytes": self.young_bytes},
            "temporaries": self.temporaries,
        }


def collect_garbage(
    db: Database,
    store: BlobStore,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    delete: bool = False,
    progress: ProgressFn | None = None,
    now: float | None = None,
) -> GcReport:
    """Find blobs no row references, last written more than ``grace_s`` seconds ago; delete if asked.

    A dry run by default. The grace period protects imports in flight: they put blobs before they
    commit the rows naming them, and a put that finds its blob already stored refreshes its age
    (local stores and S3; other fsspec stores cannot, so there a re-import of collected bytes
    racing a gc can lose them). Each blob's age is read again just before it is deleted. A blob of
    unknown age is never collected. ``grace_s=0`` is for a store nothing writes to meanwhile.
    Ages are measured against ``now`` (epoch seconds; default: the current time).
    """
    if not grace_s >= 0:
        raise InvalidInput(f"grace period {grace_s!r} must be zero or more seconds")
    now = time.time() if now is None else now
    # The listing first, then the references: a blob listed and then referenced by a commit
    # before the query is seen as referenced, and one written after the listing is not a candidate.
    listed = list(store.iter_blobs())
    with db.read() as session:
        referenced = referenced_keys(session)
    old: list[BlobInfo] = []
    young: list[BlobInfo] = []
    for info in listed:
        if info.key in referenced:
            continue
        (old if _older(info.modified, now, grace_s) else young).append(info)
    if delete:
        kept = old
        old = []
        for done, info in enumerate(kept, 1):
            if _older(store.modified(info.key), now, grace_s):
                try:
                    store.delete(info.key)
                    old.append(info)
                except NotFound:
                    pass  # collected by another gc meanwhile
            else:
                young.append(info)  # re-put since the listing: an import is using it
            if progress is not None:
                progress("deleting blobs", done, len(kept))
    temporaries = store.purge_temporaries(grace_s, delete=delete)
    return GcReport(delete, grace_s, tuple(old), len(young), sum(b.size for b in young), temporaries)


def _older(modified: float | None, now: float, grace_s: float) -> bool:
    return modified is not None and now - modified >= grace_s


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    """``keys`` in IN-list sized chunks."""
    for start in range(0, len(keys), _IN_CHUNK):
        yield keys[start : start + _IN_CHUNK]


def _keys_in(document: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, key) for every blob key in a JSON document: any 64-hex string, at any depth."""
    if isinstance(document, str):
        if is_key(document):
            yield path, document
    elif isinstance(document, dict):
        for name, value in document.items():
            # {"onnx": {"key": k}} is named "onnx", not "onnx.key".
            inner = path if name == "key" else f"{path}.{name}" if path else str(name)
            yield from _keys_in(value, inner)
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from _keys_in(value, f"{path}[{i}]")
