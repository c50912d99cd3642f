"""``sync_alias`` and ``watch_alias``: a serving box's model repository follows an alias of the registry.

For every model with the alias (or the models named), the version the alias points at is copied
from the blob store into ``<repo>/<model>/<version>/`` in Triton's layout: ``model.onnx`` (the
verified ONNX export), the TensorRT plans the version carries (``model_<cc>.plan``, for a config
that names them in ``cc_model_filenames``), and ``<repo>/<model>/config.pbtxt`` as ``cvcycle
publish`` writes it. Then the server is asked to load the model, and the versions the alias has
left are removed once the server serves the new one.

How a half-copied version is never visible, and a killed sync resumes:

- Files are staged in ``<repo>/<model>/.sync-staging/<version>/``: inside the model folder, where
  Triton and ``cvcycle serve`` ignore every folder whose name is not a version number. (A hidden
  folder at the top of the repository would not do: Triton's polling takes every top-level folder
  for a model.) A file is written as ``<name>.part``, its sha256 is checked against the digest the
  registry recorded, and only then renamed to ``<name>``; once every file is in, the folder is
  renamed to ``<repo>/<model>/<version>``, so a version folder is whole or absent.
- A sync killed midway leaves its staging folder. The next one keeps the verified files, continues
  a ``.part`` from where it stopped (hashing the bytes already there, not fetching them again) and
  removes the staging of versions the alias no longer points at.
- ``config.pbtxt`` is replaced by rename, and only when the generated text differs, after the
  version folder is in place (a server never sees a config that names a version not yet there).

Version policy ``latest 1``: a server serves the highest version folder. So superseded (older)
folders are removed only after the server reports the new version ready, and never without a
``--server`` to ask (they are kept, and reported, since ``latest 1`` does not serve them). A
rollback is the exception: a folder newer than the alias' version would go on being served, so it
is removed as soon as the older version is in place; the server keeps serving it from memory until
it has loaded the older one. The repository is never left without the alias' version.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cvcycle.db import Database
from cvcycle.db.models import ModelAlias
from cvcycle.errors import Conflict, CorruptBlob, CvcycleError, InvalidInput, NotFound
from cvcycle.refs import ModelRef, check_alias, check_model_name, format_ref
from cvcycle.registry.publish import (
    DEFAULT_MAX_BATCH_SIZE,
    MODEL_FILENAME,
    publishable_onnx,
    repository_config,
)
from cvcycle.registry.server_control import InferenceServerControl
from cvcycle.registry.triton import fsync_dir, write_model_config
from cvcycle.registry.versions import resolve_model_ref
from cvcycle.store import BlobStore

log = logging.getLogger("cvcycle.registry.sync")

STAGING_DIR = ".sync-staging"
CONFIG_FILENAME = "config.pbtxt"
DEFAULT_LOAD_TIMEOUT = 120.0
CHUNK_SIZE = 1 << 20

#: Test hook: a sync whose environment sets this stops for good once a file being copied holds this
#: many bytes (written and fsynced), after printing a line to stderr, so that a test can SIGKILL it
#: in the middle of a copy deterministically. Unset in real use.
PAUSE_AFTER_BYTES_ENV = "CVCYCLE_SYNC_PAUSE_AFTER_BYTES"

_VERSION_DIR = re.compile(r"^[1-9][0-9]*$")  # Triton's version folders: no sign, no leading zero
_CAPABILITY = re.compile(r"^[0-9]+(\.[0-9]+)?$")

#: ``(description, bytes done, bytes total)``, called as a copy proceeds.
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class VersionFile:
    """A file of a version folder and the blob it is copied from."""

    name: str
    key: str  # the sha256 the registry recorded
    size: int


@dataclass(frozen=True)
class SyncTarget:
    """A model version an alias points at, with what goes into its version folder."""

    model: str
    version: int
    classes: tuple[str, ...]
    files: tuple[VersionFile, ...]

    @property
    def label(self) -> str:
        return format_ref(self.model, self.version)


@dataclass
class ModelSync:
    """What one pass did for one model."""

    model: str
    version: int
    copied: bool = False  # the version folder was put in place by this pass
    bytes_copied: int = 0  # fetched from the store by this pass (a resumed copy counts only the rest)
    bytes_resumed: int = 0  # found already staged by a killed sync
    config_written: bool = False
    loaded: bool | None = None  # None: no server to ask; False: it already served the version
    removed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)  # superseded, kept for want of a server to confirm

    @property
    def changed(self) -> bool:
        return self.copied or self.config_written or bool(self.loaded) or bool(self.removed)

    def changes(self, repo: Path) -> list[str]:
        """One line per change, for logs."""
        where = repo / self.model
        lines = []
        if self.copied:
            resumed = f", resuming {self.bytes_resumed:,} bytes already staged" if self.bytes_resumed else ""
            lines.append(
                f"copied {format_ref(self.model, self.version)} into {where / str(self.version)} "
                f"({self.bytes_copied:,} bytes fetched{resumed})"
            )
        if self.config_written:
            lines.append(f"wrote {where / CONFIG_FILENAME}")
        if self.loaded:
            lines.append(f"the server serves {self.model} version {self.version}")
        lines += [f"removed {where / str(v)}" for v in self.removed]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "ref": format_ref(self.model, self.version),
            "copied": self.copied,
            "bytes_copied": self.bytes_copied,
            "bytes_resumed": self.bytes_resumed,
            "config_written": self.config_written,
            "loaded": self.loaded,
            "removed": self.removed,
            "kept": self.kept,
            "changed": self.changed,
        }


@dataclass
class SyncReport:
    """One pass over the repository."""

    alias: str
    repository: Path
    models: list[ModelSync]

    @property
    def changed(self) -> bool:
        return any(m.changed for m in self.models)

    def changes(self) -> list[str]:
        return [line for m in self.models for line in m.changes(self.repository)]

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "repository": str(self.repository),
            "changed": self.changed,
            "models": [m.to_json() for m in self.models],
        }


def sync_alias(
    db: Database,
    store: BlobStore,
    repo_dir: Path | str,
    alias: str,
    *,
    models: Sequence[str] = (),
    server: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    load_timeout: float = DEFAULT_LOAD_TIMEOUT,
    progress: Progress | None = None,
) -> SyncReport:
    """Make ``repo_dir`` hold (and ``server`` serve) the versions ``alias`` points at; one pass."""
    syncer = RepositorySync(db, store, repo_dir, alias, models, server, max_batch_size, load_timeout)
    try:
        return syncer.run_pass(progress)
    finally:
        syncer.close()


def watch_alias(
    db: Database,
    store: BlobStore,
    repo_dir: Path | str,
    alias: str,
    *,
    interval: float,
    stop: threading.Event | None = None,
    on_pass: Callable[[SyncReport], None] | None = None,
    models: Sequence[str] = (),
    server: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    load_timeout: float = DEFAULT_LOAD_TIMEOUT,
    progress: Progress | None = None,
) -> None:
    """Sync every ``interval`` seconds until ``stop`` is set, logging each change.

    An error in the first pass is raised (the options are wrong); later ones are logged and the
    next pass tries again (the registry, the store or the server may be back by then).
    """
    if interval <= 0:
        raise InvalidInput(f"the watch interval must be positive, got {interval:g} s")
    stop = stop or threading.Event()
    syncer = RepositorySync(db, store, repo_dir, alias, models, server, max_batch_size, load_timeout)
    try:
        first = True
        while True:
            try:
                report = syncer.run_pass(progress)
            except (CvcycleError, OSError, SQLAlchemyError) as exc:  # a store, server or database hiccup
                if first:
                    raise
                hint = getattr(exc, "hint", None)
                log.error("sync of %s failed: %s%s", syncer.repo, exc, f" (hint: {hint})" if hint else "")
            else:
                for line in report.changes():
                    log.info("%s", line)
                if on_pass is not None:
                    on_pass(report)
            first = False
            if stop.wait(interval):
                return
    finally:
        syncer.close()


def resolve_targets(session: Session, alias: str, models: Sequence[str] = ()) -> list[SyncTarget]:
    """The versions ``alias`` points at: of the models named, or of every model that has it."""
    check_alias(alias)
    names = [check_model_name(name) for name in dict.fromkeys(models)]
    if not names:
        query = select(ModelAlias.name).where(ModelAlias.alias == alias).order_by(ModelAlias.name)
        names = list(session.scalars(query))
        if not names:
            raise NotFound(
                f"no model has the alias {alias!r}, so there is nothing to sync",
                hint=f"point it at a version first: cvcycle model alias MODEL@N {alias}",
            )
    targets = []
    for name in names:
        row = resolve_model_ref(session, ModelRef(name, alias=alias))
        label = format_ref(row.name, row.version)
        artifacts = dict(row.artifacts or {})
        onnx = publishable_onnx(label, artifacts, dict(row.verification or {}))
        files = [VersionFile(MODEL_FILENAME, onnx["key"], int(onnx["size"]))]
        for capability, blob in sorted(dict(artifacts.get("tensorrt") or {}).items()):
            if not _CAPABILITY.match(str(capability)) or not isinstance(blob, dict):
                raise InvalidInput(
                    f"{label} records a TensorRT plan under {capability!r}, which is not a compute "
                    "capability such as 8.6"
                )
            files.append(VersionFile(plan_filename(str(capability)), blob["key"], int(blob["size"])))
        targets.append(SyncTarget(row.name, row.version, tuple(row.classes or ()), tuple(files)))
    return targets


def plan_filename(capability: str) -> str:
    """The file a TensorRT plan for compute capability ``capability`` (``8.6``) gets in a version folder."""
    return f"model_{capability}.plan"


class RepositorySync:
    """Syncs one repository to one alias, pass after pass (the digests it has checked are remembered)."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        repo_dir: Path | str,
        alias: str,
        models: Sequence[str] = (),
        server: str | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT,
    ) -> None:
        if max_batch_size < 1:
            raise InvalidInput(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.db = db
        self.store = store
        self.repo = Path(repo_dir).expanduser().absolute()
        self.alias = check_alias(alias)
        self.models = tuple(models)
        self.max_batch_size = max_batch_size
        self.load_timeout = load_timeout
        self.server = InferenceServerControl(server) if server else None
        # (path, inode, size, mtime) -> sha256, so that a watch does not re-hash unchanged files.
        self._digests: dict[tuple[str, int, int, int], str] = {}
        self._configs: dict[tuple[str, str, tuple[str, ...]], str] = {}

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def run_pass(self, progress: Progress | None = None) -> SyncReport:
        with self.db.read() as session:
            targets = resolve_targets(session, self.alias, self.models)
        if self.repo.exists() and not self.repo.is_dir():
            raise InvalidInput(f"{self.repo} is a file, not a model repository folder")
        self.repo.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.repo):
            return SyncReport(self.alias, self.repo, [self._sync_model(t, progress) for t in targets])

    # -- one model ----------------------------------------------------------------------------------

    def _sync_model(self, target: SyncTarget, progress: Progress | None) -> ModelSync:
        model_dir = self.repo / target.model
        version_dir = model_dir / str(target.version)
        staging_root = model_dir / STAGING_DIR
        result = ModelSync(target.model, target.version)
        in_place = version_dir.is_dir()
        _remove_stale_staging(staging_root, keep=None if in_place else str(target.version))
        if in_place:
            self._check_in_place(target, version_dir)
        else:
            self._stage_and_install(target, model_dir, result, progress)
        config_text = self._config_text(target, version_dir / MODEL_FILENAME)
        config_file = model_dir / CONFIG_FILENAME
        if not config_file.is_file() or config_file.read_text() != config_text:
            write_model_config(model_dir, config_text)
            result.config_written = True
        on_disk = _version_folders(model_dir)
        for newer in [v for v in on_disk if v > target.version]:
            # Under ``latest 1`` a newer folder would go on being served: a rollback removes it first.
            _remove_version(model_dir, newer)
            result.removed.append(newer)
        _remove_if_empty(staging_root)
        older = [v for v in on_disk if v < target.version]
        if self.server is None:
            result.kept = older
            return result
        if result.changed or not self.server.version_ready(target.model, target.version):
            self.server.load(target.model, self.load_timeout)  # False: the server's poll picks it up
            self.server.wait_until_ready(target.model, target.version, self.load_timeout)
            result.loaded = True
        else:
            result.loaded = False
        for version in older:
            _remove_version(model_dir, version)
            result.removed.append(version)
        return result

    def _check_in_place(self, target: SyncTarget, version_dir: Path) -> None:
        """A version folder already there must hold exactly the registry's bytes."""
        for file in target.files:
            path = version_dir / file.name
            if not path.is_file():
                raise Conflict(
                    f"{version_dir} is there but has no {file.name}, which {target.label} carries",
                    hint=f"it was changed by hand: remove {version_dir} and sync again",
                )
            got = self._digest(path)
            if got != file.key:
                raise Conflict(
                    f"{path} holds other bytes than {target.label}'s {file.name}: its sha256 is {got}, "
                    f"the registry recorded {file.key}",
                    hint=f"version folders are immutable and it was changed by hand: remove {version_dir} "
                    "and sync again",
                )

    def _stage_and_install(
        self, target: SyncTarget, model_dir: Path, result: ModelSync, progress: Progress | None
    ) -> None:
        created_model_dir = not model_dir.exists()
        staging = model_dir / STAGING_DIR / str(target.version)
        staging.mkdir(parents=True, exist_ok=True)
        try:
            for file in target.files:
                fetched, resumed = self._copy_verified(target, file, staging, progress)
                result.bytes_copied += fetched
                result.bytes_resumed += resumed
        except CvcycleError:
            # A damaged or missing blob is no interruption to resume from: leave the repository as
            # it was, without even the staging of this version.
            shutil.rmtree(staging, ignore_errors=True)
            _remove_if_empty(model_dir / STAGING_DIR)
            if created_model_dir:
                _remove_if_empty(model_dir)
            raise
        fsync_dir(staging)
        os.rename(staging, model_dir / str(target.version))
        fsync_dir(model_dir)
        result.copied = True

    def _copy_verified(
        self, target: SyncTarget, file: VersionFile, staging: Path, progress: Progress | None
    ) -> tuple[int, int]:
        """Copy one blob into ``staging`` as ``file.name``, verified; (bytes fetched, bytes resumed)."""
        final = staging / file.name
        if final.is_file():
            if final.stat().st_size == file.size and self._digest(final) == file.key:
                return 0, file.size  # verified by a sync that was killed later
            final.unlink()
        part = staging / f"{file.name}.part"
        offset = part.stat().st_size if part.is_file() else 0
        if offset > file.size:
            part.unlink()
            offset = 0
        digest, size = _fetch(self.store, file, part, offset, f"{target.label} {file.name}", progress)
        if digest != file.key or size != file.size:
            part.unlink()
            if offset:
                log.warning("the staged part of %s %s was damaged; copying it again", target.label, file.name)
                return self._copy_verified(target, file, staging, progress)
            raise CorruptBlob(
                f"checksum mismatch for {file.name} of {target.label}: the copy from blob {file.key} "
                f"({size:,} bytes) has sha256 {digest}, but the registry recorded {file.key} "
                f"({file.size:,} bytes); nothing was changed in {self.repo}",
                hint="the blob store holds a damaged copy: restore the blob from a backup or export "
                "the version again (cvcycle model export)",
            )
        os.rename(part, final)
        return size - offset, offset

    def _config_text(self, target: SyncTarget, onnx_file: Path) -> str:
        key = (target.files[0].key, str(self.max_batch_size), target.classes)
        text = self._configs.get(key)
        if text is None:
            onnx_bytes = onnx_file.read_bytes()
            text = repository_config(target.model, onnx_bytes, list(target.classes), self.max_batch_size)
            self._configs[key] = text
        return text

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        digest = self._digests.get(key)
        if digest is None:
            sha = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
                    sha.update(chunk)
            digest = self._digests[key] = sha.hexdigest()
        return digest


def _fetch(
    store: BlobStore, file: VersionFile, part: Path, offset: int, description: str, progress: Progress | None
) -> tuple[str, int]:
    """Append the blob's bytes from ``offset`` to ``part``, fsynced; the sha256 and size of the whole part."""
    sha = hashlib.sha256()
    if offset:
        with open(part, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
                sha.update(chunk)
    pause_after = _pause_after_bytes()
    done = offset
    with store.open(file.key) as source, open(part, "ab") as sink:
        if offset:
            source.seek(offset)
        if progress is not None:
            progress(description, done, file.size)
        while True:
            want = CHUNK_SIZE
            if pause_after is not None and done < pause_after:
                want = min(want, pause_after - done)
            chunk = source.read(want)
            if not chunk:
                break
            sink.write(chunk)
            sha.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(description, done, file.size)
            if pause_after is not None and done == pause_after:
                sink.flush()
                os.fsync(sink.fileno())
                _pause_for_test(description, done)
        sink.flush()
        os.fsync(sink.fileno())
    return sha.hexdigest(), done


def _pause_after_bytes() -> int | None:
    value = os.environ.get(PAUSE_AFTER_BYTES_ENV)
    return int(value) if value else None


def _pause_for_test(description: str, done: int) -> None:
    """The test hook's stop: say where, then wait to be killed."""
    sys.stderr.write(f"cvcycle sync: paused copying {description} after {done} bytes\n")
    sys.stderr.flush()
    threading.Event().wait()


def _version_folders(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name))


def _remove_version(model_dir: Path, version: int) -> None:
    """Take a version folder out of sight at once (by rename), then delete it."""
    trash = model_dir / STAGING_DIR / f"removing-{version}"
    trash.parent.mkdir(exist_ok=True)
    shutil.rmtree(trash, ignore_errors=True)
    os.rename(model_dir / str(version), trash)
    fsync_dir(model_dir)
    shutil.rmtree(trash, ignore_errors=True)
    _remove_if_empty(trash.parent)


def _remove_stale_staging(staging_root: Path, keep: str | None) -> None:
    """What killed syncs left for versions other than ``keep`` (which the next copy reuses)."""
    if not staging_root.is_dir():
        return
    for path in staging_root.iterdir():
        if path.name != keep:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or not there
        path.rmdir()


@contextmanager
def _exclusive(repo: Path) -> Iterator[None]:
    """One sync at a time per repository: a lock on the folder itself, so no lock file shows in it."""
    fd = os.open(repo, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(
                f"another cvcycle sync is updating {repo}",
                hint="let it finish; a `cvcycle sync --watch` follows the alias for good",
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock, as a killed process's exit does
